public import IoTCore

/// The default ``Outbox``: a durable queue of notifications in each tenant's database.
///
/// ```swift
/// let outbox = SQLiteOutbox(storage: storage)
/// try await outbox.enqueue(.tenant("acme"), OutboxMessage(id: "n-1", channel: "email",
///     recipient: "ops@example.com", body: "pump-1 overheated", orderingKey: "alarm-7", createdAt: now))
/// for message in try await outbox.claimDue(.tenant("acme"), now: now, limit: 32) { /* send */ }
/// ```
///
/// Schema: `outbox(seq, id UNIQUE, channel, recipient, subject, body, ordering_key, created_at,
/// next_attempt_at, attempts, status, last_error, delivered_at)`. "Oldest" means by `created_at`,
/// then enqueue order (`seq`); an enqueue is committed (WAL, `synchronous=NORMAL`) when it returns.
public final class SQLiteOutbox: Outbox {
    private let databases: PreparedDatabases

    /// Creates an outbox on `storage`; the table is created on first use in each tenant.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "outbox", version: 2, schema: Self.schema)
    }

    /// Version 1 created the table; version 2 (applied once, to new and older files alike) adds the body's
    /// `format` and the `attachments` (JSON, NULL when none).
    private static let schema = """
        CREATE TABLE IF NOT EXISTS outbox(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            subject TEXT,
            body TEXT NOT NULL,
            ordering_key TEXT,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            status TEXT NOT NULL,
            last_error TEXT,
            delivered_at INTEGER
        );
        CREATE INDEX IF NOT EXISTS outbox_status ON outbox(status, created_at, seq);
        CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at);
        CREATE INDEX IF NOT EXISTS outbox_ordering ON outbox(ordering_key, created_at, seq)
            WHERE ordering_key IS NOT NULL;
        ALTER TABLE outbox ADD COLUMN format TEXT NOT NULL DEFAULT 'text';
        ALTER TABLE outbox ADD COLUMN attachments TEXT;
        """

    private static let columns = """
        id, channel, recipient, subject, body, ordering_key, created_at, next_attempt_at, attempts, status, last_error,
        format, attachments
        """

    private func db(_ scope: AccessScope) async throws -> SQLiteDatabase {
        try await databases.tenant(scope.tenant)
    }

    public func enqueue(_ scope: AccessScope, _ message: OutboxMessage) async throws {
        let attachments = message.attachments.isEmpty ? nil : try StoreJSON.encode(message.attachments)
        try await db(scope).write { c in
            try mappingConstraint("outbox message '\(message.id)' already exists; enqueue it under a new id") {
                let s = try c.statement(
                    """
                    INSERT INTO outbox(id, channel, recipient, subject, body, ordering_key, created_at, next_attempt_at,
                        attempts, status, last_error, format, attachments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                s.bind(1, message.id)
                s.bind(2, message.channel)
                s.bind(3, message.recipient)
                s.bind(4, message.subject)
                s.bind(5, message.body)
                s.bind(6, message.orderingKey)
                s.bind(7, message.createdAt)
                s.bind(8, message.nextAttemptAt)
                s.bind(9, message.attempts)
                s.bind(10, message.status.rawValue)
                s.bind(11, message.lastError)
                s.bind(12, message.format.rawValue)
                s.bind(13, attachments)
                try s.run()
            }
        }
    }

    public func claimDue(_ scope: AccessScope, now: Int64, limit: Int) async throws -> [OutboxMessage] {
        guard limit > 0 else { return [] }
        return try await db(scope).write { c in
            try c.transaction {
                // A message is blocked while an earlier message with its ordering key is pending or sending,
                // whether that one is due or not.
                let select = try c.statement(
                    """
                    SELECT seq, \(Self.columns) FROM outbox AS m
                    WHERE m.status = 'pending' AND m.next_attempt_at <= ?1
                        AND (m.ordering_key IS NULL OR NOT EXISTS (
                            SELECT 1 FROM outbox AS e
                            WHERE e.ordering_key = m.ordering_key AND e.status IN ('pending', 'sending')
                                AND (e.created_at < m.created_at OR (e.created_at = m.created_at AND e.seq < m.seq))))
                    ORDER BY m.created_at, m.seq
                    LIMIT ?2
                    """)
                defer { select.reset() }
                select.bind(1, now)
                select.bind(2, limit)
                var claimed: [(seq: Int64, message: OutboxMessage)] = []
                while try select.step() {
                    var message = try Self.message(select, from: 1)
                    message.status = .sending
                    claimed.append((select.int64(0), message))
                }
                select.reset()
                let update = try c.statement("UPDATE outbox SET status = 'sending' WHERE seq = ?")
                for entry in claimed {
                    update.reset()
                    update.bind(1, entry.seq)
                    try update.run()
                }
                return claimed.map(\.message)
            }
        }
    }

    public func markDelivered(_ scope: AccessScope, id: String, at time: Int64) async throws {
        try await update(
            scope, id: id,
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2 WHERE id = ?1"
        ) { s in s.bind(2, time) }
    }

    public func markFailed(_ scope: AccessScope, id: String, error: String, nextAttemptAt: Int64) async throws {
        try await update(
            scope, id: id,
            """
            UPDATE outbox SET status = 'pending', attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
            WHERE id = ?1
            """
        ) { s in
            s.bind(2, error)
            s.bind(3, nextAttemptAt)
        }
    }

    public func markDeadLetter(_ scope: AccessScope, id: String, error: String) async throws {
        try await update(
            scope, id: id,
            "UPDATE outbox SET status = 'dead_letter', attempts = attempts + 1, last_error = ?2 WHERE id = ?1"
        ) { s in s.bind(2, error) }
    }

    /// Runs an `UPDATE … WHERE id = ?1`; throws ``IoTError/Code/notFound`` when no message has `id`.
    private func update(
        _ scope: AccessScope, id: String, _ sql: String, bind: @escaping @Sendable (Statement) -> Void
    ) async throws {
        let changed = try await db(scope).write { c in
            let s = try c.statement(sql)
            s.bind(1, id)
            bind(s)
            try s.run()
            return c.changes
        }
        if changed == 0 {
            throw OutboxMessage.notFound(id, tenant: scope.tenant)
        }
    }

    public func retry(_ scope: AccessScope, id: String, at time: Int64) async throws {
        let status = try await db(scope).write { c -> String? in
            let s = try c.statement("SELECT status FROM outbox WHERE id = ?")
            defer { s.reset() }
            s.bind(1, id)
            guard try s.step() else { return nil }
            let status = s.string(0)
            s.reset()
            if status == "dead_letter" {
                let u = try c.statement(
                    "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?2 WHERE id = ?1")
                u.bind(1, id)
                u.bind(2, time)
                try u.run()
            }
            return status
        }
        if let refusal = OutboxMessage.retryRefusal(status, id: id, tenant: scope.tenant) { throw refusal }
    }

    public func message(_ scope: AccessScope, id: String) async throws -> OutboxMessage? {
        try await db(scope).read { c in
            let s = try c.statement("SELECT \(Self.columns) FROM outbox WHERE id = ?")
            defer { s.reset() }
            s.bind(1, id)
            return try s.step() ? try Self.message(s, from: 0) : nil
        }
    }

    @discardableResult
    public func releaseClaims(_ scope: AccessScope) async throws -> Int {
        try await db(scope).write { c in
            let s = try c.statement("UPDATE outbox SET status = 'pending' WHERE status = 'sending'")
            try s.run()
            return c.changes
        }
    }

    public func messages(_ scope: AccessScope, status: OutboxMessage.Status, limit: Int) async throws -> [OutboxMessage]
    {
        guard limit > 0 else { return [] }
        return try await db(scope).read { c in
            let s = try c.statement(
                "SELECT \(Self.columns) FROM outbox WHERE status = ? ORDER BY created_at, seq LIMIT ?")
            defer { s.reset() }
            s.bind(1, status.rawValue)
            s.bind(2, limit)
            var result: [OutboxMessage] = []
            while try s.step() { result.append(try Self.message(s, from: 0)) }
            return result
        }
    }

    /// Reads the ``columns`` starting at column `i`.
    private static func message(_ s: Statement, from i: Int32) throws -> OutboxMessage {
        guard let status = OutboxMessage.Status(rawValue: s.string(i + 9)) else {
            throw IoTError(
                .storage,
                "outbox message '\(s.string(i))' has an unknown status '\(s.string(i + 9))'; the database was changed outside iotd or is damaged"
            )
        }
        return OutboxMessage(
            id: s.string(i), channel: s.string(i + 1), recipient: s.string(i + 2), subject: s.optionalString(i + 3),
            body: s.string(i + 4), orderingKey: s.optionalString(i + 5), createdAt: s.int64(i + 6),
            nextAttemptAt: s.int64(i + 7), attempts: s.int(i + 8), status: status, lastError: s.optionalString(i + 10),
            format: NotificationFormat(rawValue: s.string(i + 11)) ?? .text,
            attachments: try s.optionalString(i + 12).map {
                try StoreJSON.decode([NotificationAttachment].self, from: $0)
            }
                ?? [])
    }
}
