public import IoTCore
import Synchronization

/// An ``Outbox`` in memory, with the same semantics as the SQLite default: oldest first (by
/// ``OutboxMessage/createdAt``, then enqueue order), ordering keys block later messages, claims can be
/// released. Not durable, of course: for tests.
///
/// ```swift
/// let outbox = InMemoryOutbox()
/// try await outbox.enqueue(.tenant("acme"), OutboxMessage(id: "n-1", channel: "inbox", recipient: "ops",
///                                                         body: "pump-1 overheated", createdAt: 0))
/// let batch = try await outbox.claimDue(.tenant("acme"), now: 0, limit: 10)
/// ```
public final class InMemoryOutbox: Outbox {
    private struct Entry {
        var seq: UInt64
        var message: OutboxMessage
        func isEarlier(than other: Entry) -> Bool {
            (message.createdAt, seq) < (other.message.createdAt, other.seq)
        }
    }
    private struct State {
        var nextSeq: UInt64 = 0
        var entries: [TenantID: [String: Entry]] = [:]
        /// Each tenant's message ids, oldest first: kept in order as messages come (usually at the end), so a
        /// claim walks them instead of sorting every message it holds.
        var order: [TenantID: [String]] = [:]
        func ordered(_ tenant: TenantID) -> [Entry] {
            guard let tenantEntries = entries[tenant] else { return [] }
            return (order[tenant] ?? []).map { tenantEntries[$0]! }
        }
        mutating func insert(_ entry: Entry, tenant: TenantID) {
            var ids = order[tenant, default: []]
            order[tenant] = nil
            var i = ids.count
            while i > 0, let previous = entries[tenant]?[ids[i - 1]], entry.isEarlier(than: previous) { i -= 1 }
            ids.insert(entry.message.id, at: i)
            order[tenant] = ids
            entries[tenant, default: [:]][entry.message.id] = entry
        }
    }
    private let state = Mutex<State>(State())

    /// Creates an empty outbox.
    public init() {}

    public func enqueue(_ scope: AccessScope, _ message: OutboxMessage) async throws {
        try state.withLock { s throws(IoTError) in
            guard s.entries[scope.tenant]?[message.id] == nil else {
                throw IoTError(.conflict, "outbox message '\(message.id)' already exists; enqueue it under a new id")
            }
            s.nextSeq += 1
            s.insert(Entry(seq: s.nextSeq, message: message), tenant: scope.tenant)
        }
    }

    public func claimDue(_ scope: AccessScope, now: Int64, limit: Int) async throws -> [OutboxMessage] {
        guard limit > 0 else { return [] }
        return state.withLock { s in
            // Ordering keys that have an earlier pending or sending message, as the scan goes.
            var blockedKeys: Set<String> = []
            var claimed: [OutboxMessage] = []
            for id in s.order[scope.tenant] ?? [] {
                let m = s.entries[scope.tenant]![id]!.message
                let isBlocking = m.status == .pending || m.status == .sending
                let blocked = m.orderingKey.map { blockedKeys.contains($0) } ?? false
                if claimed.count < limit, m.status == .pending, m.nextAttemptAt <= now, !blocked {
                    var sending = m
                    sending.status = .sending
                    s.entries[scope.tenant]![m.id]!.message = sending
                    claimed.append(sending)
                }
                if isBlocking, let key = m.orderingKey { blockedKeys.insert(key) }
            }
            return claimed
        }
    }

    private func update(_ scope: AccessScope, id: String, _ change: (inout OutboxMessage) -> Void) throws(IoTError) {
        try state.withLock { s throws(IoTError) in
            guard s.entries[scope.tenant]?[id] != nil else {
                throw OutboxMessage.notFound(id, tenant: scope.tenant)
            }
            change(&s.entries[scope.tenant]![id]!.message)
        }
    }

    public func markDelivered(_ scope: AccessScope, id: String, at time: Int64) async throws {
        try update(scope, id: id) { m in
            m.status = .delivered
            m.attempts += 1
        }
    }

    public func markFailed(_ scope: AccessScope, id: String, error: String, nextAttemptAt: Int64) async throws {
        try update(scope, id: id) { m in
            m.status = .pending
            m.attempts += 1
            m.lastError = error
            m.nextAttemptAt = nextAttemptAt
        }
    }

    public func markDeadLetter(_ scope: AccessScope, id: String, error: String) async throws {
        try update(scope, id: id) { m in
            m.status = .deadLetter
            m.attempts += 1
            m.lastError = error
        }
    }

    public func retry(_ scope: AccessScope, id: String, at time: Int64) async throws {
        try state.withLock { s throws(IoTError) in
            let status = s.entries[scope.tenant]?[id]?.message.status.rawValue
            if let refusal = OutboxMessage.retryRefusal(status, id: id, tenant: scope.tenant) { throw refusal }
            s.entries[scope.tenant]![id]!.message.status = .pending
            s.entries[scope.tenant]![id]!.message.attempts = 0
            s.entries[scope.tenant]![id]!.message.nextAttemptAt = time
        }
    }

    public func message(_ scope: AccessScope, id: String) async throws -> OutboxMessage? {
        state.withLock { s in s.entries[scope.tenant]?[id]?.message }
    }

    @discardableResult
    public func releaseClaims(_ scope: AccessScope) async throws -> Int {
        state.withLock { s in
            guard var tenant = s.entries[scope.tenant] else { return 0 }
            var count = 0
            for (id, entry) in tenant where entry.message.status == .sending {
                tenant[id]!.message.status = .pending
                count += 1
            }
            s.entries[scope.tenant] = tenant
            return count
        }
    }

    public func messages(_ scope: AccessScope, status: OutboxMessage.Status, limit: Int) async throws -> [OutboxMessage]
    {
        guard limit > 0 else { return [] }
        return state.withLock { s in
            Array(s.ordered(scope.tenant).lazy.map(\.message).filter { $0.status == status }.prefix(limit))
        }
    }
}
