/// A min-heap of items by deadline; items with the same deadline come out in the order they went in.
/// The rule engine's timers and the Modbus poll schedule use it.
package struct DeadlineHeap<Item> {
    fileprivate struct Entry {
        var deadline: Int64
        var seq: UInt64
        var item: Item
    }
    private var heap: [Entry] = []
    private var seq: UInt64 = 0

    package init() {}

    package var isEmpty: Bool { heap.isEmpty }
    package var count: Int { heap.count }
    /// The earliest deadline, or `nil` when empty.
    package var nextDeadline: Int64? { heap.first?.deadline }

    package mutating func push(_ deadline: Int64, _ item: Item) {
        seq &+= 1
        heap.append(Entry(deadline: deadline, seq: seq, item: item))
        siftUp(heap.count - 1)
    }

    /// Removes and returns the earliest entry due at `now`.
    package mutating func popDue(_ now: Int64) -> (deadline: Int64, item: Item)? {
        guard let first = heap.first, first.deadline <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        return (first.deadline, first.item)
    }

    /// Removes every entry whose item matches; the others keep their order.
    package mutating func removeAll(where matches: (Item) -> Bool) {
        heap.removeAll { matches($0.item) }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    package mutating func removeAll() { heap.removeAll() }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let p = (i - 1) / 2
            guard less(heap[i], heap[p]) else { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
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

    private func less(_ a: Entry, _ b: Entry) -> Bool { (a.deadline, a.seq) < (b.deadline, b.seq) }
}

extension DeadlineHeap: Sendable where Item: Sendable {}
extension DeadlineHeap.Entry: Sendable where Item: Sendable {}
