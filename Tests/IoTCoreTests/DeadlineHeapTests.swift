@_spi(Internal) import IoTCore
import Testing

/// The deadline heap behind the rule engine's timers and the Modbus poll schedule.
@Suite struct DeadlineHeapTests {
    @Test func popsByDeadlineThenInsertionOrderAndOnlyWhenDue() {
        var heap = DeadlineHeap<String>()
        heap.push(30, "c")
        heap.push(10, "a1")
        heap.push(20, "b")
        heap.push(10, "a2")
        #expect(heap.nextDeadline == 10 && heap.count == 4)
        #expect(heap.popDue(9) == nil)
        var out: [String] = []
        while let due = heap.popDue(25) { out.append(due.item) }
        #expect(out == ["a1", "a2", "b"])
        #expect(heap.nextDeadline == 30 && heap.count == 1)
    }

    @Test func removingItemsKeepsTheRestInOrder() {
        var heap = DeadlineHeap<Int>()
        var generator = SystemRandomNumberGenerator()
        let deadlines = (0..<200).map { _ in Int64.random(in: 0..<50, using: &generator) }
        for (i, d) in deadlines.enumerated() { heap.push(d, i) }
        heap.removeAll { $0 % 3 == 0 }
        var out: [(Int64, Int)] = []
        while let due = heap.popDue(.max) { out.append((due.deadline, due.item)) }
        let expected = deadlines.enumerated().filter { $0.offset % 3 != 0 }.map { ($0.element, $0.offset) }
            .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        #expect(out.map(\.1) == expected.map(\.1))
        #expect(heap.isEmpty)
    }
}
