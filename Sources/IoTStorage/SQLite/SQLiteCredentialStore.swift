public import IoTCore

/// The default ``CredentialStore``: token digests in the system database, looked up by primary key.
///
/// ```swift
/// let credentials = SQLiteCredentialStore(storage: storage)
/// let auth = TokenAuthenticator(credentials: credentials)
/// let token = try await auth.issueToken(for: DeviceIdentity(tenant: "acme", deviceUID: "meter-1"),
///                                       label: "primary", now: clock.now())
/// ```
///
/// Schema: `tokens(digest BLOB PRIMARY KEY, tenant, device, label, created_at)` with an index on
/// `(tenant, device)`. Lookups use the reader connection and see every committed revocation at once.
public final class SQLiteCredentialStore: CredentialStore {
    private let databases: PreparedDatabases

    /// Creates a credential store on `storage`'s system database; the table is created on first use.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "credentials", version: 1, schema: Self.schema)
    }

    private static let schema = """
        CREATE TABLE IF NOT EXISTS tokens(
            digest BLOB PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            device TEXT NOT NULL,
            label TEXT NOT NULL,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS tokens_device ON tokens(tenant, device);
        """

    private func db() async throws -> SQLiteDatabase {
        try await databases.system()
    }

    public func addToken(digest: [UInt8], for device: DeviceIdentity, label: String, createdAt: Int64) async throws {
        guard !digest.isEmpty else {
            throw IoTError(.invalidArgument, "cannot store an empty token digest; pass the SHA-256 digest of the token")
        }
        try await db().write { c in
            try mappingConstraint("this token digest is already stored; issue a new token") {
                let s = try c.statement(
                    "INSERT INTO tokens(digest, tenant, device, label, created_at) VALUES (?, ?, ?, ?, ?)")
                s.bind(1, digest)
                s.bind(2, device.tenant.rawValue)
                s.bind(3, device.deviceUID)
                s.bind(4, label)
                s.bind(5, createdAt)
                try s.run()
            }
        }
    }

    public func identity(forTokenDigest digest: [UInt8]) async throws -> DeviceIdentity? {
        try await db().read { c in
            let s = try c.statement("SELECT tenant, device FROM tokens WHERE digest = ?")
            defer { s.reset() }
            s.bind(1, digest)
            guard try s.step() else { return nil }
            return DeviceIdentity(tenant: TenantID(s.string(0)), deviceUID: s.string(1))
        }
    }

    @discardableResult
    public func revokeToken(digest: [UInt8]) async throws -> Bool {
        try await db().write { c in
            let s = try c.statement("DELETE FROM tokens WHERE digest = ?")
            s.bind(1, digest)
            try s.run()
            return c.changes > 0
        }
    }

    @discardableResult
    public func revokeTokens(of device: DeviceIdentity) async throws -> Int {
        try await db().write { c in
            let s = try c.statement("DELETE FROM tokens WHERE tenant = ? AND device = ?")
            s.bind(1, device.tenant.rawValue)
            s.bind(2, device.deviceUID)
            try s.run()
            return c.changes
        }
    }

    public func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] {
        try await db().read { c in
            let s = try c.statement(
                "SELECT label, created_at FROM tokens WHERE tenant = ? AND device = ? ORDER BY created_at, label")
            defer { s.reset() }
            s.bind(1, device.tenant.rawValue)
            s.bind(2, device.deviceUID)
            var result: [TokenInfo] = []
            while try s.step() { result.append(TokenInfo(label: s.string(0), createdAt: s.int64(1))) }
            return result
        }
    }
}
