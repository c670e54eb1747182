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
/// `(tenant, device)`; `passwords(tenant, device, label, username, hash, created_at)` keyed by
/// `(tenant, device, label)` with an index on `username` (version 2); `certificates` (version 3);
/// `credentials_revision`, a counter that triggers raise on changes (version 4). Lookups use the reader
/// connection and see every committed revocation at once.
public final class SQLiteCredentialStore: CredentialStore {
    private let databases: PreparedDatabases

    /// Creates a credential store on `storage`'s system database; the table is created on first use.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "credentials", version: 4, schema: Self.schema)
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
        CREATE TABLE IF NOT EXISTS passwords(
            tenant TEXT NOT NULL,
            device TEXT NOT NULL,
            label TEXT NOT NULL,
            username TEXT NOT NULL,
            hash TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant, device, label)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS passwords_username ON passwords(username);
        CREATE TABLE IF NOT EXISTS certificates(
            tenant TEXT NOT NULL,
            device TEXT NOT NULL,
            label TEXT NOT NULL,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant, device, label)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX IF NOT EXISTS certificates_value ON certificates(kind, value);
        \(revisionCounterSchema(
            "credentials_revision",
            // Every change the credentialsRevision() contract names. Adding a token changes no earlier lookup, so
            // bulk provisioning counts nothing.
            raisedBy: [
                ("tokens", "UPDATE"), ("tokens", "DELETE"), ("passwords", "INSERT"), ("passwords", "UPDATE"),
                ("passwords", "DELETE"), ("certificates", "INSERT"), ("certificates", "UPDATE"),
                ("certificates", "DELETE"),
            ]))
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

    /// Stores the digests in one transaction: all or none.
    public func addTokens(_ tokens: [(digest: [UInt8], device: DeviceIdentity)], label: String, createdAt: Int64)
        async throws
    {
        guard !tokens.contains(where: { $0.digest.isEmpty }) else {
            throw IoTError(.invalidArgument, "cannot store an empty token digest; pass the SHA-256 digest of the token")
        }
        let rows = tokens.map { ($0.digest, $0.device.tenant.rawValue, $0.device.deviceUID) }
        try await db().write { c in
            try mappingConstraint("a token digest is already stored; issue new tokens") {
                try c.transaction {
                    let s = try c.statement(
                        "INSERT INTO tokens(digest, tenant, device, label, created_at) VALUES (?, ?, ?, ?, ?)")
                    for (digest, tenant, device) in rows {
                        s.reset()
                        s.bind(1, digest)
                        s.bind(2, tenant)
                        s.bind(3, device)
                        s.bind(4, label)
                        s.bind(5, createdAt)
                        try s.run()
                    }
                }
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

    /// A counter that triggers raise on every change of a token, password or certificate credential but the
    /// addition of a token: one read by primary key.
    public func credentialsRevision() async throws -> UInt64? {
        try await db().read { try $0.revision("credentials_revision") }
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

    public func addPassword(_ credential: StoredPassword) async throws {
        guard !credential.username.isEmpty, !credential.hash.isEmpty else {
            throw IoTError(.invalidArgument, "a password credential needs a username and a password hash")
        }
        try await db().write { c in
            let owner = try c.statement("SELECT tenant, device FROM passwords WHERE username = ? LIMIT 1")
            owner.bind(1, credential.username)
            if try owner.step() {
                let other = DeviceIdentity(tenant: TenantID(owner.string(0)), deviceUID: owner.string(1))
                owner.reset()
                if other != credential.device {
                    throw IoTError(
                        .conflict, "username '\(credential.username)' belongs to another device; pick another")
                }
            } else {
                owner.reset()
            }
            try mappingConstraint(
                "device already has a password credential labelled '\(credential.label)'; use another label"
            ) {
                let s = try c.statement(
                    "INSERT INTO passwords(tenant, device, label, username, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                )
                s.bind(1, credential.device.tenant.rawValue)
                s.bind(2, credential.device.deviceUID)
                s.bind(3, credential.label)
                s.bind(4, credential.username)
                s.bind(5, credential.hash)
                s.bind(6, credential.createdAt)
                try s.run()
            }
        }
    }

    public func passwords(forUsername username: String) async throws -> [StoredPassword] {
        try await db().read { c in
            let s = try c.statement(
                "SELECT tenant, device, label, username, hash, created_at FROM passwords WHERE username = ? ORDER BY created_at, label"
            )
            defer { s.reset() }
            s.bind(1, username)
            return try Self.readPasswords(s)
        }
    }

    public func passwords(of device: DeviceIdentity) async throws -> [StoredPassword] {
        try await db().read { c in
            let s = try c.statement(
                "SELECT tenant, device, label, username, hash, created_at FROM passwords WHERE tenant = ? AND device = ? ORDER BY created_at, label"
            )
            defer { s.reset() }
            s.bind(1, device.tenant.rawValue)
            s.bind(2, device.deviceUID)
            return try Self.readPasswords(s)
        }
    }

    private static func readPasswords(_ s: Statement) throws -> [StoredPassword] {
        var result: [StoredPassword] = []
        while try s.step() {
            result.append(
                StoredPassword(
                    device: DeviceIdentity(tenant: TenantID(s.string(0)), deviceUID: s.string(1)),
                    username: s.string(3),
                    hash: s.string(4), label: s.string(2), createdAt: s.int64(5)))
        }
        return result
    }

    /// Deletes a device's rows of `table` (`passwords` or `certificates`), or only the one with `label`;
    /// returns how many.
    private func deleteRows(from table: StaticString, of device: DeviceIdentity, label: String?) async throws -> Int {
        try await db().write { c in
            let s = try c.statement(
                "DELETE FROM \(table) WHERE tenant = ? AND device = ?" + (label == nil ? "" : " AND label = ?"))
            s.bind(1, device.tenant.rawValue)
            s.bind(2, device.deviceUID)
            if let label { s.bind(3, label) }
            try s.run()
            return c.changes
        }
    }

    @discardableResult
    public func revokePassword(of device: DeviceIdentity, label: String) async throws -> Bool {
        try await deleteRows(from: "passwords", of: device, label: label) > 0
    }

    @discardableResult
    public func revokePasswords(of device: DeviceIdentity) async throws -> Int {
        try await deleteRows(from: "passwords", of: device, label: nil)
    }

    // MARK: Certificates

    public func addCertificate(_ credential: StoredCertificate) async throws {
        let value = try credential.match.normalize(credential.value)
        try await db().write { c in
            let owner = try c.statement("SELECT tenant, device FROM certificates WHERE kind = ? AND value = ?")
            owner.bind(1, credential.match.rawValue)
            owner.bind(2, value)
            if try owner.step() {
                let other = DeviceIdentity(tenant: TenantID(owner.string(0)), deviceUID: owner.string(1))
                owner.reset()
                throw IoTError(
                    .conflict,
                    other == credential.device
                        ? "this certificate \(credential.match.rawValue) is already registered for the device"
                        : "this certificate \(credential.match.rawValue) belongs to another device; revoke it there first"
                )
            }
            owner.reset()
            try mappingConstraint(
                "device already has a certificate credential labelled '\(credential.label)'; use another label"
            ) {
                let s = try c.statement(
                    "INSERT INTO certificates(tenant, device, label, kind, value, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                )
                s.bind(1, credential.device.tenant.rawValue)
                s.bind(2, credential.device.deviceUID)
                s.bind(3, credential.label)
                s.bind(4, credential.match.rawValue)
                s.bind(5, value)
                s.bind(6, credential.createdAt)
                try s.run()
            }
        }
    }

    public func identity(forCertificate match: CertificateMatch, value: String) async throws -> DeviceIdentity? {
        try await db().read { c in
            let s = try c.statement("SELECT tenant, device FROM certificates WHERE kind = ? AND value = ?")
            defer { s.reset() }
            s.bind(1, match.rawValue)
            s.bind(2, value)
            guard try s.step() else { return nil }
            return DeviceIdentity(tenant: TenantID(s.string(0)), deviceUID: s.string(1))
        }
    }

    public func certificates(of device: DeviceIdentity) async throws -> [StoredCertificate] {
        try await db().read { c in
            let s = try c.statement(
                "SELECT label, kind, value, created_at FROM certificates WHERE tenant = ? AND device = ? ORDER BY created_at, label"
            )
            defer { s.reset() }
            s.bind(1, device.tenant.rawValue)
            s.bind(2, device.deviceUID)
            var result: [StoredCertificate] = []
            while try s.step() {
                result.append(
                    StoredCertificate(
                        device: device, match: CertificateMatch(rawValue: s.string(1)) ?? .fingerprint,
                        value: s.string(2),
                        label: s.string(0), createdAt: s.int64(3)))
            }
            return result
        }
    }

    @discardableResult
    public func revokeCertificate(of device: DeviceIdentity, label: String) async throws -> Bool {
        try await deleteRows(from: "certificates", of: device, label: label) > 0
    }

    @discardableResult
    public func revokeCertificates(of device: DeviceIdentity) async throws -> Int {
        try await deleteRows(from: "certificates", of: device, label: nil)
    }
}
