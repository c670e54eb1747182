/// A min-heap of items by deadline; items with the same deadline come out in the order they went in.
/// The rule engine's timers and the Modbus poll schedule use it.
///
/// For the package's own modules only (`@_spi(Internal) import IoTCore`), not part of the SDK's API. It is
/// SPI rather than `package` so that it can be `@inlinable`: Swift (6.3) does not inline or specialize
/// `@inlinable package` code in another module, and called unspecialized, every push and pop looked up
/// the generic metadata at run time (about 3.6 % of a Modbus I/O thread's time).
@_spi(Internal)
public struct DeadlineHeap<Item> {
    @usableFromInline
    struct Entry {
        @usableFromInline var deadline: Int64
        @usableFromInline var seq: UInt64
        @usableFromInline var item: Item

        @inlinable
        init(deadline: Int64, seq: UInt64, item: Item) {
            self.deadline = deadline
            self.seq = seq
            self.item = item
        }
    }
    @usableFromInline var heap: [Entry] = []
    @usableFromInline var seq: UInt64 = 0

    /// An empty heap.
    @inlinable public init() {}

    /// Whether the heap holds no entry.
    @inlinable public var isEmpty: Bool { heap.isEmpty }
    /// The number of entries.
    @inlinable public var count: Int { heap.count }
    /// The earliest deadline, or `nil` when empty.
    @inlinable public var nextDeadline: Int64? { heap.first?.deadline }

    /// Adds `item` due at `deadline`.
    @inlinable
    public mutating func push(_ deadline: Int64, _ item: Item) {
        seq &+= 1
        heap.append(Entry(deadline: deadline, seq: seq, item: item))
        siftUp(heap.count - 1)
    }

    /// Removes and returns the earliest entry due at `now`.
    @inlinable
    public mutating func popDue(_ now: Int64) -> (deadline: Int64, item: Item)? {
        guard let first = heap.first, first.deadline <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        return (first.deadline, first.item)
    }

    /// Removes every entry whose item matches; the others keep their order.
    @inlinable
    public mutating func removeAll(where matches: (Item) -> Bool) {
        heap.removeAll { matches($0.item) }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    /// Removes every entry.
    @inlinable public mutating func removeAll() { heap.removeAll() }

    @inlinable
    mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let p = (i - 1) / 2
            guard less(heap[i], heap[p]) else { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    @inlinable
    mutating func siftDown(_ start: Int) {
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

    @inlinable
    func less(_ a: Entry, _ b: Entry) -> Bool { (a.deadline, a.seq) < (b.deadline, b.seq) }
}

extension DeadlineHeap: Sendable where Item: Sendable {}
extension DeadlineHeap.Entry: Sendable where Item: Sendable {}
