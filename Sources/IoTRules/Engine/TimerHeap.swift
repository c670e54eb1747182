/// A min-heap of (deadline, slot) entries. Entries are not removed when a slot's deadline moves:
/// the engine checks ``Slot/timerDeadline`` when an entry comes due and skips stale ones.
struct TimerHeap {
    private struct Entry {
        var deadline: Int64
        var seq: UInt64
        var slot: Slot
    }
    private var heap: [Entry] = []
    private var seq: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var nextDeadline: Int64? { heap.first?.deadline }

    mutating func push(_ deadline: Int64, _ slot: Slot) {
        seq &+= 1
        heap.append(Entry(deadline: deadline, seq: seq, slot: slot))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard less(heap[i], heap[p]) else { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    /// Removes and returns the earliest entry due at `now`.
    mutating func popDue(_ now: Int64) -> (deadline: Int64, slot: Slot)? {
        guard let first = heap.first, first.deadline <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return (first.deadline, first.slot)
    }

    private func less(_ a: Entry, _ b: Entry) -> Bool { (a.deadline, a.seq) < (b.deadline, b.seq) }
}
