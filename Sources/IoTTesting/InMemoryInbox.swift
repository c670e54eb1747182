public import IoTCore
import Synchronization

/// An ``Inbox`` in memory, with the SQLite default's semantics (idempotent by id, newest first).
public final class InMemoryInbox: Inbox {
    private let state = Mutex<[TenantID: [InboxMessage]]>([:])

    /// Creates an empty inbox.
    public init() {}

    public func add(_ scope: AccessScope, _ message: InboxMessage) async throws {
        state.withLock { s in
            if s[scope.tenant]?.contains(where: { $0.id == message.id }) == true { return }
            s[scope.tenant, default: []].append(message)
        }
    }

    public func messages(_ scope: AccessScope, recipient: String, unreadOnly: Bool, limit: Int) async throws
        -> [InboxMessage]
    {
        state.withLock { s in
            let all = (s[scope.tenant] ?? []).enumerated()
                .filter { $0.element.recipient == recipient && (!unreadOnly || $0.element.readAt == nil) }
                .sorted { ($0.element.createdAt, $0.offset) > ($1.element.createdAt, $1.offset) }
            return Array(all.prefix(max(0, limit)).map(\.element))
        }
    }

    public func markRead(_ scope: AccessScope, recipient: String, id: String, at time: Int64) async throws -> Bool {
        state.withLock { s in
            guard let i = s[scope.tenant]?.firstIndex(where: { $0.id == id && $0.recipient == recipient }) else {
                return false
            }
            if s[scope.tenant]![i].readAt == nil { s[scope.tenant]![i].readAt = time }
            return true
        }
    }

    public func unreadCount(_ scope: AccessScope, recipient: String) async throws -> Int {
        state.withLock { s in (s[scope.tenant] ?? []).filter { $0.recipient == recipient && $0.readAt == nil }.count }
    }
}
