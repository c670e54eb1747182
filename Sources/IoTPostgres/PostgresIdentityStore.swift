import Foundation
public import IoTCore
import Logging
import NIOCore
import PostgresNIO

/// An ``IoTCore/IdentityStore`` in PostgreSQL: users, custom roles, departments and secret digests in the system
/// schema (identity spans tenants, as device credentials do), so a user signs in at any instance.
///
/// Tables (component `identity`): `users(username PRIMARY KEY, tenant, body)`, `roles(tenant, id, body)`,
/// `departments(tenant, id, body)` and `secrets(digest bytea PRIMARY KEY, kind, id, tenant, username, body)`,
/// where `body` is the record's JSON and the platform's tenant column is `''`.
public final class PostgresIdentityStore: IdentityStore {
    let storage: PostgresStorage

    /// Creates an identity store on `storage`; the tables are created on first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.users(username text PRIMARY KEY, tenant text NOT NULL, body text NOT NULL);
        CREATE INDEX IF NOT EXISTS users_tenant ON {schema}.users(tenant, username);
        CREATE TABLE IF NOT EXISTS {schema}.roles(
          tenant text NOT NULL, id text NOT NULL, body text NOT NULL, PRIMARY KEY(tenant, id));
        CREATE TABLE IF NOT EXISTS {schema}.departments(
          tenant text NOT NULL, id text NOT NULL, body text NOT NULL, PRIMARY KEY(tenant, id));
        CREATE TABLE IF NOT EXISTS {schema}.secrets(
          digest bytea PRIMARY KEY, kind text NOT NULL, id text NOT NULL, tenant text NOT NULL, username text,
          body text NOT NULL);
        CREATE INDEX IF NOT EXISTS secrets_kind ON {schema}.secrets(kind, tenant, id);
        CREATE INDEX IF NOT EXISTS secrets_user ON {schema}.secrets(username)
        """

    private func schema() async throws -> String {
        try await storage.systemSchema(component: "identity", version: 1, Self.ddl)
    }

    private static func column(_ tenant: TenantID?) -> String { tenant?.rawValue ?? "" }

    private static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private func bodies<T: Decodable & Sendable>(_ type: T.Type, _ sql: String, _ binds: PostgresBindings) async throws
        -> [T]
    {
        try await storage.mapErrors("read identity records") {
            let rows = try await storage.client.query(
                PostgresQuery(unsafeSQL: sql, binds: binds), logger: storage.logger)
            var out: [T] = []
            for try await body in rows.decode(String.self) {
                do {
                    out.append(try JSONDecoder().decode(T.self, from: Data(body.utf8)))
                } catch {
                    throw IoTError(
                        .storage,
                        "an identity record cannot be read (\(error)); the database was changed outside iotd or is damaged"
                    )
                }
            }
            return out
        }
    }

    /// Adds or replaces a user.
    public func saveUser(_ user: UserAccount) async throws {
        let schema = try await schema()
        try await storage.execute(
            "save user \(user.username)",
            """
            INSERT INTO \(schema).users(username, tenant, body) VALUES ($1, $2, $3)
            ON CONFLICT (username) DO UPDATE SET tenant = excluded.tenant, body = excluded.body
            """, PostgresStorage.binds(user.username, Self.column(user.tenant), try Self.encode(user)))
    }

    /// The user `username`, or `nil`.
    public func user(_ username: String) async throws -> UserAccount? {
        let schema = try await schema()
        return try await bodies(
            UserAccount.self, "SELECT body FROM \(schema).users WHERE username = $1", PostgresStorage.binds(username)
        ).first
    }

    /// The users of `tenant` (the platform's when `nil`), by username.
    public func users(tenant: TenantID?) async throws -> [UserAccount] {
        let schema = try await schema()
        return try await bodies(
            UserAccount.self, "SELECT body FROM \(schema).users WHERE tenant = $1 ORDER BY username",
            PostgresStorage.binds(Self.column(tenant)))
    }

    /// Deletes a user and their secrets.
    public func deleteUser(_ username: String) async throws -> Bool {
        let schema = try await schema()
        let logger = storage.logger
        return try await storage.mapErrors("delete user \(username)") {
            try await storage.client.withTransaction(logger: logger) { c in
                try await c.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(schema).secrets WHERE username = $1",
                        binds: PostgresStorage.binds(username)), logger: logger)
                let rows = try await c.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(schema).users WHERE username = $1 RETURNING username",
                        binds: PostgresStorage.binds(username)), logger: logger)
                var n = 0
                for try await _ in rows { n += 1 }
                return n > 0
            }
        }
    }

    private func saveKeyed(_ table: String, tenant: String, id: String, body: String) async throws {
        let schema = try await schema()
        try await storage.execute(
            "save \(table) \(id)",
            """
            INSERT INTO \(schema).\(table)(tenant, id, body) VALUES ($1, $2, $3)
            ON CONFLICT (tenant, id) DO UPDATE SET body = excluded.body
            """, PostgresStorage.binds(tenant, id, body))
    }

    private func deleteKeyed(_ table: String, tenant: String, id: String) async throws -> Bool {
        let schema = try await schema()
        return try await storage.execute(
            "delete \(table) \(id)", "DELETE FROM \(schema).\(table) WHERE tenant = $1 AND id = $2 RETURNING id",
            PostgresStorage.binds(tenant, id)) > 0
    }

    /// Adds or replaces a custom role of `tenant` (the platform's when `nil`).
    public func saveRole(_ role: Role, tenant: TenantID?) async throws {
        try await saveKeyed("roles", tenant: Self.column(tenant), id: role.id, body: try Self.encode(role))
    }

    /// The custom roles of `tenant`, by id.
    public func roles(tenant: TenantID?) async throws -> [Role] {
        let schema = try await schema()
        return try await bodies(
            Role.self, "SELECT body FROM \(schema).roles WHERE tenant = $1 ORDER BY id",
            PostgresStorage.binds(Self.column(tenant)))
    }

    /// Deletes a custom role.
    public func deleteRole(_ id: String, tenant: TenantID?) async throws -> Bool {
        try await deleteKeyed("roles", tenant: Self.column(tenant), id: id)
    }

    /// Adds or replaces a department of `tenant`.
    public func saveDepartment(_ department: Department, tenant: TenantID) async throws {
        try await saveKeyed(
            "departments", tenant: tenant.rawValue, id: department.id, body: try Self.encode(department))
    }

    /// The departments of `tenant`, by id.
    public func departments(tenant: TenantID) async throws -> [Department] {
        let schema = try await schema()
        return try await bodies(
            Department.self, "SELECT body FROM \(schema).departments WHERE tenant = $1 ORDER BY id",
            PostgresStorage.binds(tenant.rawValue))
    }

    /// Deletes a department.
    public func deleteDepartment(_ id: String, tenant: TenantID) async throws -> Bool {
        try await deleteKeyed("departments", tenant: tenant.rawValue, id: id)
    }

    /// Adds or replaces a secret (by digest).
    public func saveSecret(_ secret: IdentitySecret) async throws {
        let schema = try await schema()
        var binds = PostgresStorage.binds(
            ByteBuffer(bytes: secret.digest), secret.kind.rawValue, secret.id, Self.column(secret.tenant))
        binds.append(secret.username)
        binds.append(try Self.encode(secret))
        try await storage.execute(
            "save a \(secret.kind.rawValue) secret",
            """
            INSERT INTO \(schema).secrets(digest, kind, id, tenant, username, body) VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (digest) DO UPDATE SET kind = excluded.kind, id = excluded.id, tenant = excluded.tenant,
              username = excluded.username, body = excluded.body
            """, binds)
    }

    /// The secret with `digest`, or `nil`.
    public func secret(digest: [UInt8]) async throws -> IdentitySecret? {
        let schema = try await schema()
        return try await bodies(
            IdentitySecret.self, "SELECT body FROM \(schema).secrets WHERE digest = $1",
            PostgresStorage.binds(ByteBuffer(bytes: digest))
        ).first
    }

    /// The secrets of `kind` of `tenant`, by id.
    public func secrets(kind: IdentitySecret.Kind, tenant: TenantID?) async throws -> [IdentitySecret] {
        let schema = try await schema()
        return try await bodies(
            IdentitySecret.self, "SELECT body FROM \(schema).secrets WHERE kind = $1 AND tenant = $2 ORDER BY id",
            PostgresStorage.binds(kind.rawValue, Self.column(tenant)))
    }

    /// Deletes the secret with `digest`.
    public func deleteSecret(digest: [UInt8]) async throws -> Bool {
        let schema = try await schema()
        return try await storage.execute(
            "delete a secret", "DELETE FROM \(schema).secrets WHERE digest = $1 RETURNING id",
            PostgresStorage.binds(ByteBuffer(bytes: digest))) > 0
    }

    /// Deletes the user's secrets of `kinds` (all when `nil`); returns how many.
    public func deleteSecrets(username: String, kinds: Set<IdentitySecret.Kind>?) async throws -> Int {
        let schema = try await schema()
        if let kinds {
            return try await storage.execute(
                "delete the secrets of \(username)",
                "DELETE FROM \(schema).secrets WHERE username = $1 AND kind = ANY($2::text[]) RETURNING id",
                PostgresStorage.binds(username, kinds.map(\.rawValue).sorted()))
        }
        return try await storage.execute(
            "delete the secrets of \(username)", "DELETE FROM \(schema).secrets WHERE username = $1 RETURNING id",
            PostgresStorage.binds(username))
    }

    /// Deletes the tenant's users, roles, departments and secrets.
    public func deleteTenant(_ tenant: TenantID) async throws {
        let schema = try await schema()
        let logger = storage.logger
        try await storage.mapErrors("delete the identities of tenant \(tenant)") {
            try await storage.client.withTransaction(logger: logger) { c in
                for table in ["users", "roles", "departments", "secrets"] {
                    try await c.query(
                        PostgresQuery(
                            unsafeSQL: "DELETE FROM \(schema).\(table) WHERE tenant = $1",
                            binds: PostgresStorage.binds(tenant.rawValue)), logger: logger)
                }
            }
        }
    }
}

/// An ``IoTCore/AuditStore`` in PostgreSQL: one append-only table in the system schema, shared by every instance.
///
/// Table (component `audit`): `audit(id bigserial, time, actor, tenant, action, target, status, client)` with
/// indexes on `time` and `(tenant, id)`; the platform's tenant column is NULL.
public final class PostgresAuditStore: AuditStore {
    let storage: PostgresStorage

    /// Creates an audit store on `storage`; the table is created on first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.audit(
          id bigserial PRIMARY KEY, time bigint NOT NULL, actor text NOT NULL, tenant text, action text NOT NULL,
          target text NOT NULL, status integer NOT NULL, client text NOT NULL);
        CREATE INDEX IF NOT EXISTS audit_time ON {schema}.audit(time);
        CREATE INDEX IF NOT EXISTS audit_tenant ON {schema}.audit(tenant, id)
        """

    private func schema() async throws -> String {
        try await storage.systemSchema(component: "audit", version: 1, Self.ddl)
    }

    /// Appends an entry; returns it with its id.
    @discardableResult
    public func append(_ event: AuditEvent) async throws -> AuditEvent {
        let schema = try await schema()
        var binds = PostgresStorage.binds(event.time, event.actor)
        binds.append(event.tenant?.rawValue)
        binds.append(event.action)
        binds.append(event.target)
        binds.append(Int32(clamping: event.status))
        binds.append(event.client)
        return try await storage.mapErrors("append to the audit log") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(schema).audit(time, actor, tenant, action, target, status, client)
                        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
                        """, binds: binds), logger: storage.logger)
            var stored = event
            for try await id in rows.decode(Int64.self) { stored.id = id }
            return stored
        }
    }

    /// The entries matching `query`, oldest first.
    public func events(_ query: AuditQuery) async throws -> [AuditEvent] {
        let schema = try await schema()
        var conditions: [String] = []
        var binds = PostgresBindings()
        func add(_ condition: String, _ value: some PostgresDynamicTypeEncodable) {
            binds.append(value)
            conditions.append(condition.replacingOccurrences(of: "?", with: "$\(binds.count)"))
        }
        if let tenant = query.tenant { add("tenant = ?", tenant.rawValue) }
        if let actor = query.actor { add("actor = ?", actor) }
        if let prefix = query.actionPrefix { add("starts_with(action, ?)", prefix) }
        if let succeeded = query.succeeded { conditions.append(succeeded ? "status < 400" : "status >= 400") }
        if let from = query.from { add("time >= ?", from) }
        if let to = query.to { add("time < ?", to) }
        if let after = query.after { add("id > ?", after) }
        let sql =
            "SELECT id, time, actor, tenant, action, target, status, client FROM \(schema).audit"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY id LIMIT \(max(query.limit, 0))"
        return try await storage.mapErrors("read the audit log") {
            let rows = try await storage.client.query(
                PostgresQuery(unsafeSQL: sql, binds: binds), logger: storage.logger)
            var out: [AuditEvent] = []
            for try await (id, time, actor, tenant, action, target, status, client) in rows.decode(
                (Int64, Int64, String, String?, String, String, Int32, String).self)
            {
                out.append(
                    AuditEvent(
                        id: id, time: time, actor: actor, tenant: tenant.map { TenantID($0) }, action: action,
                        target: target, status: Int(status), client: client))
            }
            return out
        }
    }

    /// Deletes the entries before `time`; returns how many.
    public func prune(before time: Int64) async throws -> Int {
        let schema = try await schema()
        return try await storage.execute(
            "prune the audit log", "DELETE FROM \(schema).audit WHERE time < $1 RETURNING id",
            PostgresStorage.binds(time))
    }
}
