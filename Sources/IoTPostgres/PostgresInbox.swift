public import IoTCore
import PostgresNIO

/// An ``IoTCore/Inbox`` in PostgreSQL: site messages per recipient in each tenant's schema.
///
/// Table (component `inbox`): `inbox(seq, id UNIQUE, recipient, subject, body, created_at, read_at)`; newest
/// first means by `created_at`, then insertion order, descending.
public final class PostgresInbox: Inbox {
    let storage: PostgresStorage

    /// Creates an inbox on `storage`; the table is created on each tenant's first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.inbox(
          seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, recipient text NOT NULL, subject text, body text NOT NULL,
          created_at bigint NOT NULL, read_at bigint);
        CREATE INDEX IF NOT EXISTS inbox_recipient ON {schema}.inbox(recipient, created_at, seq)
        """

    func schema(_ tenant: TenantID) async throws -> String {
        try await storage.schema(of: tenant, component: "inbox", version: 1, Self.ddl)
    }

    /// Adds a message; one whose id exists is ignored.
    public func add(_ scope: AccessScope, _ message: InboxMessage) async throws {
        let schema = try await schema(scope.tenant)
        var binds = PostgresStorage.binds(message.id, message.recipient)
        binds.append(message.subject)
        binds.append(message.body)
        binds.append(message.createdAt)
        binds.append(message.readAt)
        try await storage.execute(
            "add an inbox message",
            """
            INSERT INTO \(schema).inbox(id, recipient, subject, body, created_at, read_at)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING
            """, binds)
    }

    /// Up to `limit` messages of `recipient` (unread only when asked), newest first.
    public func messages(_ scope: AccessScope, recipient: String, unreadOnly: Bool, limit: Int) async throws
        -> [InboxMessage]
    {
        guard limit > 0 else { return [] }
        let schema = try await schema(scope.tenant)
        return try await storage.mapErrors("read the inbox of \(recipient)") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT id, recipient, subject, body, created_at, read_at FROM \(schema).inbox
                        WHERE recipient = $1 AND (NOT $2 OR read_at IS NULL)
                        ORDER BY created_at DESC, seq DESC LIMIT $3
                        """, binds: PostgresStorage.binds(recipient, unreadOnly, Int64(limit))), logger: storage.logger)
            var out: [InboxMessage] = []
            for try await (id, to, subject, body, created, read) in rows.decode(
                (String, String, String?, String, Int64, Int64?).self)
            {
                out.append(
                    InboxMessage(id: id, recipient: to, subject: subject, body: body, createdAt: created, readAt: read))
            }
            return out
        }
    }

    /// Marks a message read (the first time counts); `false` when the recipient has no such message.
    public func markRead(_ scope: AccessScope, recipient: String, id: String, at time: Int64) async throws -> Bool {
        let schema = try await schema(scope.tenant)
        return try await storage.execute(
            "mark inbox message \(id) read",
            """
            UPDATE \(schema).inbox SET read_at = COALESCE(read_at, $3) WHERE id = $1 AND recipient = $2 RETURNING id
            """, PostgresStorage.binds(id, recipient, time)) > 0
    }

    /// How many messages of `recipient` are unread.
    public func unreadCount(_ scope: AccessScope, recipient: String) async throws -> Int {
        let schema = try await schema(scope.tenant)
        return try await storage.mapErrors("count the unread messages of \(recipient)") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT count(*) FROM \(schema).inbox WHERE recipient = $1 AND read_at IS NULL",
                    binds: PostgresStorage.binds(recipient)), logger: storage.logger)
            var n: Int64 = 0
            for try await c in rows.decode(Int64.self) { n = c }
            return Int(n)
        }
    }
}

/// A ``IoTCore/ScriptStore`` in PostgreSQL: named parse scripts in the system schema, shared by every instance.
///
/// Table (component `scripts`): `scripts(name PRIMARY KEY, language, source, updated_at)`. Each save and delete is
/// announced to the other instances (kind `parser-script` on `iot_definitions`).
public final class PostgresScriptStore: ScriptStore {
    let storage: PostgresStorage

    /// Creates a script store on `storage`; the table is created on first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.scripts(
          name text PRIMARY KEY, language text NOT NULL, source text NOT NULL, updated_at bigint NOT NULL)
        """

    private func schema() async throws -> String {
        try await storage.systemSchema(component: "scripts", version: 1, Self.ddl)
    }

    /// Adds or replaces a script.
    public func saveScript(_ script: ScriptSource) async throws {
        let schema = try await schema()
        try await storage.execute(
            "save script \(script.name)",
            """
            INSERT INTO \(schema).scripts(name, language, source, updated_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (name) DO UPDATE SET language = excluded.language, source = excluded.source,
              updated_at = excluded.updated_at
            """, PostgresStorage.binds(script.name, script.language, script.source, script.updatedAt))
        await PostgresDefinitionStore.announce(storage, TenantID(""), Self.kind, script.name)
    }

    /// The kind under which changes are announced (``PostgresDefinitionStore/followChanges(_:)``).
    static let kind = "parser-script"

    private func scripts(_ sql: String, _ binds: PostgresBindings) async throws -> [ScriptSource] {
        try await storage.mapErrors("read scripts") {
            let rows = try await storage.client.query(
                PostgresQuery(unsafeSQL: sql, binds: binds), logger: storage.logger)
            var out: [ScriptSource] = []
            for try await (name, language, source, updated) in rows.decode((String, String, String, Int64).self) {
                out.append(ScriptSource(name: name, language: language, source: source, updatedAt: updated))
            }
            return out
        }
    }

    /// Every script, by name.
    public func scripts() async throws -> [ScriptSource] {
        let schema = try await schema()
        return try await scripts(
            "SELECT name, language, source, updated_at FROM \(schema).scripts ORDER BY name", PostgresBindings())
    }

    /// The script `name`, or `nil`.
    public func script(named name: String) async throws -> ScriptSource? {
        let schema = try await schema()
        return try await scripts(
            "SELECT name, language, source, updated_at FROM \(schema).scripts WHERE name = $1",
            PostgresStorage.binds(name)
        ).first
    }

    /// Deletes the script `name`; `false` when there was none.
    public func deleteScript(named name: String) async throws -> Bool {
        let schema = try await schema()
        let deleted =
            try await storage.execute(
                "delete script \(name)", "DELETE FROM \(schema).scripts WHERE name = $1 RETURNING name",
                PostgresStorage.binds(name)) > 0
        if deleted { await PostgresDefinitionStore.announce(storage, TenantID(""), Self.kind, name) }
        return deleted
    }
}
