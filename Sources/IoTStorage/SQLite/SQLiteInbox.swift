public import IoTCore

/// The default ``Inbox``: site messages per recipient in each tenant's database.
///
/// Schema: `inbox(seq, id UNIQUE, recipient, subject, body, created_at, read_at)`; newest first means by
/// `created_at` then insertion order, descending.
public final class SQLiteInbox: Inbox {
    private let databases: PreparedDatabases

    /// Creates an inbox on `storage`; the table is created on first use in each tenant.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "inbox", version: 1, schema: Self.schema)
    }

    private static let schema = """
        CREATE TABLE IF NOT EXISTS inbox(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            recipient TEXT NOT NULL,
            subject TEXT,
            body TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            read_at INTEGER
        );
        CREATE INDEX IF NOT EXISTS inbox_recipient ON inbox(recipient, created_at, seq);
        """

    public func add(_ scope: AccessScope, _ message: InboxMessage) async throws {
        try await databases.tenant(scope.tenant).write { c in
            let s = try c.statement(
                "INSERT OR IGNORE INTO inbox(id, recipient, subject, body, created_at, read_at) VALUES (?, ?, ?, ?, ?, ?)"
            )
            s.bind(1, message.id)
            s.bind(2, message.recipient)
            s.bind(3, message.subject)
            s.bind(4, message.body)
            s.bind(5, message.createdAt)
            s.bind(6, message.readAt)
            try s.run()
        }
    }

    public func messages(_ scope: AccessScope, recipient: String, unreadOnly: Bool, limit: Int) async throws
        -> [InboxMessage]
    {
        guard limit > 0 else { return [] }
        return try await databases.tenant(scope.tenant).read { c in
            let s = try c.statement(
                """
                SELECT id, recipient, subject, body, created_at, read_at FROM inbox
                WHERE recipient = ?1 AND (?2 = 0 OR read_at IS NULL) ORDER BY created_at DESC, seq DESC LIMIT ?3
                """)
            defer { s.reset() }
            s.bind(1, recipient)
            s.bind(2, unreadOnly ? 1 : 0)
            s.bind(3, limit)
            var out: [InboxMessage] = []
            while try s.step() {
                out.append(
                    InboxMessage(
                        id: s.string(0), recipient: s.string(1), subject: s.optionalString(2), body: s.string(3),
                        createdAt: s.int64(4), readAt: s.isNull(5) ? nil : s.int64(5)))
            }
            return out
        }
    }

    public func markRead(_ scope: AccessScope, recipient: String, id: String, at time: Int64) async throws -> Bool {
        try await databases.tenant(scope.tenant).write { c in
            let s = try c.statement("UPDATE inbox SET read_at = COALESCE(read_at, ?3) WHERE id = ?1 AND recipient = ?2")
            s.bind(1, id)
            s.bind(2, recipient)
            s.bind(3, time)
            try s.run()
            return c.changes > 0
        }
    }

    public func unreadCount(_ scope: AccessScope, recipient: String) async throws -> Int {
        try await databases.tenant(scope.tenant).read { c in
            let s = try c.statement("SELECT count(*) FROM inbox WHERE recipient = ? AND read_at IS NULL")
            defer { s.reset() }
            s.bind(1, recipient)
            return try s.step() ? Int(s.int64(0)) : 0
        }
    }
}
