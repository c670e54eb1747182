import Synchronization

/// The bounded queue between the journal and the point store.
///
/// Capacity is counted in points and reserved *before* a message is journaled, so a message that was
/// acknowledged always has room, and a full queue turns into back-pressure instead of memory growth.
/// Items are enqueued in journal order (the ingestor appends and enqueues under one lock), so a batch
/// is always a prefix of what was journaled and the store's watermark never skips an entry.
final class CommitQueue: Sendable {
    struct Item: Sendable {
        var sequence: UInt64
        var tenant: TenantID
        var points: [Point]
        var transport: String?  // nil for replayed entries (not counted as new messages)
    }

    private struct State {
        var items: [Item] = []
        var head = 0
        var reserved = 0
        var closed = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Reserves room for `points`; `false` when the queue is full or closed.
    /// A single message larger than the whole capacity is admitted when the queue is empty.
    func reserve(_ points: Int) -> Bool {
        state.withLock { s in
            guard !s.closed else { return false }
            if s.reserved > 0 && s.reserved + points > capacity { return false }
            s.reserved += points
            return true
        }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// Gives back a reservation that was not used (the journal append failed).
    func cancel(_ points: Int) {
        state.withLock { $0.reserved -= points }
    }

    /// Adds an item whose room was reserved (or a replayed item, which bypasses the reservation).
    func enqueue(_ item: Item, reserved: Bool = true) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if !reserved { s.reserved += item.points.count }
            s.items.append(item)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Queues reserved items in order under one lock (a journal write of several messages).
    func enqueue(contentsOf items: [Item]) {
        guard !items.isEmpty else { return }
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.items.append(contentsOf: items)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Whether nothing is queued (items taken but not yet released do not count).
    var isEmpty: Bool { state.withLock { $0.head >= $0.items.count } }

    /// Takes up to `maxPoints` points' worth of what is queued now (at least one item), without waiting;
    /// `nil` when nothing is queued.
    func takeIfAvailable(maxPoints: Int) -> [Item]? {
        state.withLock { s in Self.takeBatch(&s, maxPoints: maxPoints) }
    }

    private static func takeBatch(_ s: inout State, maxPoints: Int) -> [Item]? {
        guard s.head < s.items.count else { return nil }
        var n = 0
        var end = s.head
        while end < s.items.count && (end == s.head || n + s.items[end].points.count <= maxPoints) {
            n += s.items[end].points.count
            end += 1
        }
        let batch = Array(s.items[s.head..<end])
        s.head = end
        if s.head > 4096 && s.head * 2 > s.items.count {
            s.items.removeFirst(s.head)
            s.head = 0
        }
        return batch
    }

    /// Waits for items and takes up to `maxPoints` points' worth (at least one item); `nil` when the
    /// queue is closed and empty.
    func take(maxPoints: Int) async -> [Item]? {
        while true {
            let result: [Item]?? = state.withLock { s in
                if let batch = Self.takeBatch(&s, maxPoints: maxPoints) { return .some(batch) }
                return s.closed ? .some(nil) : nil
            }
            if let result { return result }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.head < s.items.count || s.closed { return true }
                    s.waiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        }
    }

    /// Frees the room of committed items.
    func release(_ points: Int) {
        state.withLock { $0.reserved -= points }
    }

    /// Takes no more reservations; the consumer drains what is queued, then `take` returns `nil`.
    func close() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.closed = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Points reserved or queued and not yet committed.
    var depth: Int { state.withLock { $0.reserved } }
}
