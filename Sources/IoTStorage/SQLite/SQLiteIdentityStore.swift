public import IoTCore

/// The default ``IoTCore/IdentityStore``: users, custom roles, departments and secret digests in the system
/// database (identity spans tenants, as device credentials do).
///
/// Schema: `users(username PRIMARY KEY, tenant, body)`, `roles(tenant, id, body)`,
/// `departments(tenant, id, body)` and `secrets(digest BLOB PRIMARY KEY, kind, id, tenant, username, body)`,
/// where `body` is the record's JSON and the platform's tenant column is `''`.
public final class SQLiteIdentityStore: IdentityStore {
    private let databases: PreparedDatabases

    /// Creates an identity store on `storage`'s system database; the tables are created on first use.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "identity", version: 1, schema: Self.schema)
    }

    private static let schema = """
        CREATE TABLE IF NOT EXISTS users(
            username TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            body TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS users_tenant ON users(tenant, username);
        CREATE TABLE IF NOT EXISTS roles(
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (tenant, id)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS departments(
            tenant TEXT NOT NULL,
            id TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (tenant, id)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS secrets(
            digest BLOB PRIMARY KEY NOT NULL,
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            username TEXT,
            body TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS secrets_kind ON secrets(kind, tenant, id);
        CREATE INDEX IF NOT EXISTS secrets_user ON secrets(username);
        """

    private func db() async throws -> SQLiteDatabase { try await databases.system() }
    private static func column(_ tenant: TenantID?) -> String { tenant?.rawValue ?? "" }

    public func saveUser(_ user: UserAccount) async throws {
        let body = try StoreJSON.encode(user)
        try await db().write { c in
            let s = try c.statement("INSERT OR REPLACE INTO users(username, tenant, body) VALUES (?, ?, ?)")
            s.bind(1, user.username)
            s.bind(2, Self.column(user.tenant))
            s.bind(3, body)
            try s.run()
        }
    }

    public func user(_ username: String) async throws -> UserAccount? {
        try await db().read { c in
            let s = try c.statement("SELECT body FROM users WHERE username = ?")
            defer { s.reset() }
            s.bind(1, username)
            return try s.step() ? try StoreJSON.decode(UserAccount.self, from: s.string(0)) : nil
        }
    }

    public func users(tenant: TenantID?) async throws -> [UserAccount] {
        try await bodies("SELECT body FROM users WHERE tenant = ? ORDER BY username", Self.column(tenant))
    }

    public func deleteUser(_ username: String) async throws -> Bool {
        try await db().write { c in
            let secrets = try c.statement("DELETE FROM secrets WHERE username = ?")
            secrets.bind(1, username)
            try secrets.run()
            let s = try c.statement("DELETE FROM users WHERE username = ?")
            s.bind(1, username)
            try s.run()
            return c.changes > 0
        }
    }

    public func saveRole(_ role: Role, tenant: TenantID?) async throws {
        try await saveKeyed("roles", tenant: Self.column(tenant), id: role.id, body: try StoreJSON.encode(role))
    }

    public func roles(tenant: TenantID?) async throws -> [Role] {
        try await bodies("SELECT body FROM roles WHERE tenant = ? ORDER BY id", Self.column(tenant))
    }

    public func deleteRole(_ id: String, tenant: TenantID?) async throws -> Bool {
        try await deleteKeyed("roles", tenant: Self.column(tenant), id: id)
    }

    public func saveDepartment(_ department: Department, tenant: TenantID) async throws {
        try await saveKeyed(
            "departments", tenant: tenant.rawValue, id: department.id, body: try StoreJSON.encode(department))
    }

    public func departments(tenant: TenantID) async throws -> [Department] {
        try await bodies("SELECT body FROM departments WHERE tenant = ? ORDER BY id", tenant.rawValue)
    }

    public func deleteDepartment(_ id: String, tenant: TenantID) async throws -> Bool {
        try await deleteKeyed("departments", tenant: tenant.rawValue, id: id)
    }

    public func saveSecret(_ secret: IdentitySecret) async throws {
        let body = try StoreJSON.encode(secret)
        try await db().write { c in
            let s = try c.statement(
                "INSERT OR REPLACE INTO secrets(digest, kind, id, tenant, username, body) VALUES (?, ?, ?, ?, ?, ?)")
            s.bind(1, blob: secret.digest)
            s.bind(2, secret.kind.rawValue)
            s.bind(3, secret.id)
            s.bind(4, Self.column(secret.tenant))
            s.bind(5, secret.username)
            s.bind(6, body)
            try s.run()
        }
    }

    public func secret(digest: [UInt8]) async throws -> IdentitySecret? {
        try await db().read { c in
            let s = try c.statement("SELECT body FROM secrets WHERE digest = ?")
            defer { s.reset() }
            s.bind(1, blob: digest)
            return try s.step() ? try StoreJSON.decode(IdentitySecret.self, from: s.string(0)) : nil
        }
    }

    public func secrets(kind: IdentitySecret.Kind, tenant: TenantID?) async throws -> [IdentitySecret] {
        try await bodies(
            "SELECT body FROM secrets WHERE kind = ? AND tenant = ? ORDER BY id", kind.rawValue, Self.column(tenant))
    }

    public func deleteSecret(digest: [UInt8]) async throws -> Bool {
        try await db().write { c in
            let s = try c.statement("DELETE FROM secrets WHERE digest = ?")
            s.bind(1, blob: digest)
            try s.run()
            return c.changes > 0
        }
    }

    public func deleteSecrets(username: String, kinds: Set<IdentitySecret.Kind>?) async throws -> Int {
        let kindsJSON = try kinds.map { try StoreJSON.encode($0.map(\.rawValue).sorted()) }
        return try await db().write { c in
            let s = try c.statement(
                "DELETE FROM secrets WHERE username = ?1 AND (?2 IS NULL OR kind IN (SELECT value FROM json_each(?2)))")
            s.bind(1, username)
            s.bind(2, kindsJSON)
            try s.run()
            return c.changes
        }
    }

    public func deleteTenant(_ tenant: TenantID) async throws {
        try await db().write { c in
            for table in ["users", "roles", "departments", "secrets"] {
                let s = try c.statement("DELETE FROM \(table) WHERE tenant = ?")
                s.bind(1, tenant.rawValue)
                try s.run()
            }
        }
    }

    private func bodies<T: Decodable & Sendable>(_ sql: String, _ arguments: String...) async throws -> [T] {
        try await db().read { c in
            let s = try c.statement(sql)
            defer { s.reset() }
            for (i, argument) in arguments.enumerated() { s.bind(Int32(i + 1), argument) }
            var out: [T] = []
            while try s.step() { out.append(try StoreJSON.decode(T.self, from: s.string(0))) }
            return out
        }
    }

    private func saveKeyed(_ table: String, tenant: String, id: String, body: String) async throws {
        try await db().write { c in
            let s = try c.statement("INSERT OR REPLACE INTO \(table)(tenant, id, body) VALUES (?, ?, ?)")
            s.bind(1, tenant)
            s.bind(2, id)
            s.bind(3, body)
            try s.run()
        }
    }

    private func deleteKeyed(_ table: String, tenant: String, id: String) async throws -> Bool {
        try await db().write { c in
            let s = try c.statement("DELETE FROM \(table) WHERE tenant = ? AND id = ?")
            s.bind(1, tenant)
            s.bind(2, id)
            try s.run()
            return c.changes > 0
        }
    }
}

/// The default ``IoTCore/AuditStore``: one append-only table in the system database.
///
/// Schema: `audit(id INTEGER PRIMARY KEY AUTOINCREMENT, time, actor, tenant, action, target, status, client)`
/// with indexes on `time` and `(tenant, id)`; the platform's tenant column is NULL.
public final class SQLiteAuditStore: AuditStore {
    private let databases: PreparedDatabases

    /// Creates an audit store on `storage`'s system database; the table is created on first use.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "audit", version: 1, schema: Self.schema)
    }

    private static let schema = """
        CREATE TABLE IF NOT EXISTS audit(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time INTEGER NOT NULL,
            actor TEXT NOT NULL,
            tenant TEXT,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            status INTEGER NOT NULL,
            client TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
        CREATE INDEX IF NOT EXISTS audit_tenant ON audit(tenant, id);
        """

    private func db() async throws -> SQLiteDatabase { try await databases.system() }

    @discardableResult
    public func append(_ event: AuditEvent) async throws -> AuditEvent {
        try await db().write { c in
            let s = try c.statement(
                "INSERT INTO audit(time, actor, tenant, action, target, status, client) VALUES (?, ?, ?, ?, ?, ?, ?)")
            s.bind(1, event.time)
            s.bind(2, event.actor)
            s.bind(3, event.tenant?.rawValue)
            s.bind(4, event.action)
            s.bind(5, event.target)
            s.bind(6, event.status)
            s.bind(7, event.client)
            try s.run()
            var stored = event
            stored.id = c.lastInsertRowID
            return stored
        }
    }

    public func events(_ query: AuditQuery) async throws -> [AuditEvent] {
        var conditions: [String] = []
        var texts: [(Int32, String)] = []
        var numbers: [(Int32, Int64)] = []
        func add(_ sql: String, text: String? = nil, number: Int64? = nil) {
            conditions.append(sql)
            let index = Int32(texts.count + numbers.count + 1)
            if let text { texts.append((index, text)) }
            if let number { numbers.append((index, number)) }
        }
        if let tenant = query.tenant { add("tenant = ?", text: tenant.rawValue) }
        if let actor = query.actor { add("actor = ?", text: actor) }
        if let prefix = query.actionPrefix { add("instr(action, ?) = 1", text: prefix) }
        if let succeeded = query.succeeded { conditions.append(succeeded ? "status < 400" : "status >= 400") }
        if let from = query.from { add("time >= ?", number: from) }
        if let to = query.to { add("time < ?", number: to) }
        if let after = query.after { add("id > ?", number: after) }
        let sql =
            "SELECT id, time, actor, tenant, action, target, status, client FROM audit"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")) + " ORDER BY id LIMIT ?"
        let limit = Int64(max(query.limit, 0))
        return try await db().read { [texts, numbers] c in
            let s = try c.statement(sql)
            defer { s.reset() }
            for (i, text) in texts { s.bind(i, text) }
            for (i, number) in numbers { s.bind(i, number) }
            s.bind(Int32(texts.count + numbers.count + 1), limit)
            var out: [AuditEvent] = []
            while try s.step() {
                out.append(
                    AuditEvent(
                        id: s.int64(0), time: s.int64(1), actor: s.string(2),
                        tenant: s.optionalString(3).map { TenantID($0) },
                        action: s.string(4), target: s.string(5), status: Int(s.int64(6)), client: s.string(7)))
            }
            return out
        }
    }

    public func prune(before time: Int64) async throws -> Int {
        try await db().write { c in
            let s = try c.statement("DELETE FROM audit WHERE time < ?")
            s.bind(1, time)
            try s.run()
            return c.changes
        }
    }
}
