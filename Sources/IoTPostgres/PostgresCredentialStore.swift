public import IoTCore
import Logging
import NIOCore
import PostgresNIO

/// A ``IoTCore/CredentialStore`` in PostgreSQL: token digests, password hashes and certificate credentials in
/// the system schema, so a device authenticates at any instance and a revocation holds at all of them at once.
///
/// Tables (component `credentials`): `tokens(digest bytea PRIMARY KEY, tenant, device, label, created_at)`;
/// `passwords(tenant, device, label, username, hash, created_at)`, primary key `(tenant, device, label)`, indexed
/// by username; `certificates(tenant, device, label, kind, value, created_at)`, primary key
/// `(tenant, device, label)`, `(kind, value)` unique; `credentials_revision(id, value)`, a counter that
/// statement triggers raise on every change but a token's addition (version 2).
public final class PostgresCredentialStore: CredentialStore {
    let storage: PostgresStorage

    /// Creates a credential store on `storage`; the tables are created on first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.tokens(
          digest bytea PRIMARY KEY, tenant text NOT NULL, device text NOT NULL, label text NOT NULL,
          created_at bigint NOT NULL);
        CREATE INDEX IF NOT EXISTS tokens_device ON {schema}.tokens(tenant, device);
        CREATE TABLE IF NOT EXISTS {schema}.passwords(
          tenant text NOT NULL, device text NOT NULL, label text NOT NULL, username text NOT NULL, hash text NOT NULL,
          created_at bigint NOT NULL, PRIMARY KEY(tenant, device, label));
        CREATE INDEX IF NOT EXISTS passwords_username ON {schema}.passwords(username);
        CREATE TABLE IF NOT EXISTS {schema}.certificates(
          tenant text NOT NULL, device text NOT NULL, label text NOT NULL, kind text NOT NULL, value text NOT NULL,
          created_at bigint NOT NULL, PRIMARY KEY(tenant, device, label));
        CREATE UNIQUE INDEX IF NOT EXISTS certificates_value ON {schema}.certificates(kind, value);

        """
        // Every change the credentialsRevision() contract names; adding a token changes no earlier lookup.
        + PostgresStorage.revisionCounterDDL(
            "credentials_revision", function: "credentials_revised",
            raisedBy: [
                ("tokens", "UPDATE OR DELETE"), ("passwords", "INSERT OR UPDATE OR DELETE"),
                ("certificates", "INSERT OR UPDATE OR DELETE"),
            ])

    private func schema() async throws -> String {
        try await storage.systemSchema(component: "credentials", version: 2, Self.ddl)
    }

    var logger: Logger { storage.logger }

    private func rows<T: Sendable>(
        _ what: String, _ sql: String, _ binds: PostgresBindings,
        _ read: @escaping (PostgresRowSequence) async throws -> T
    ) async throws -> T {
        try await storage.mapErrors(what) {
            try await read(try await storage.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger))
        }
    }

    // MARK: Tokens

    /// Stores a token digest for `device`; ``IoTCore/IoTError/Code/conflict`` when the digest is stored.
    public func addToken(digest: [UInt8], for device: DeviceIdentity, label: String, createdAt: Int64) async throws {
        try await addTokens([(digest, device)], label: label, createdAt: createdAt)
    }

    /// Stores the digests in one statement: all or none.
    public func addTokens(_ tokens: [(digest: [UInt8], device: DeviceIdentity)], label: String, createdAt: Int64)
        async throws
    {
        guard !tokens.isEmpty else { return }
        guard !tokens.contains(where: { $0.digest.isEmpty }) else {
            throw IoTError(.invalidArgument, "cannot store an empty token digest; pass the SHA-256 digest of the token")
        }
        let schema = try await schema()
        try await storage.mapErrors("store token digests") {
            do {
                try await storage.client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(schema).tokens(digest, tenant, device, label, created_at)
                            SELECT d, t, u, $4, $5 FROM unnest($1::bytea[], $2::text[], $3::text[]) AS x(d, t, u)
                            """,
                        binds: PostgresStorage.binds(
                            tokens.map { ByteBuffer(bytes: $0.digest) }, tokens.map(\.device.tenant.rawValue),
                            tokens.map(\.device.deviceUID), label, createdAt)), logger: logger)
            } catch  where PostgresStorage.isUniqueViolation(error) {
                throw IoTError(.conflict, "this token digest is already stored; issue a new token")
            }
        }
    }

    /// The device of a token digest, or `nil`.
    /// The counter the triggers raise, whichever instance (or SQL session) made the change.
    public func credentialsRevision() async throws -> UInt64? {
        let schema = try await schema()
        return try await rows(
            "read the credentials revision", "SELECT value FROM \(schema).credentials_revision WHERE id = 1",
            PostgresBindings()
        ) { rows in
            var value: UInt64?
            for try await v in rows.decode(Int64.self) { value = UInt64(bitPattern: v) }
            return value
        }
    }

    public func identity(forTokenDigest digest: [UInt8]) async throws -> DeviceIdentity? {
        let schema = try await schema()
        return try await rows(
            "look up a token", "SELECT tenant, device FROM \(schema).tokens WHERE digest = $1",
            PostgresStorage.binds(ByteBuffer(bytes: digest))
        ) { rows in
            var found: DeviceIdentity?
            for try await (t, d) in rows.decode((String, String).self) {
                found = DeviceIdentity(tenant: TenantID(t), deviceUID: d)
            }
            return found
        }
    }

    /// Revokes one token; `false` when it was not stored.
    @discardableResult
    public func revokeToken(digest: [UInt8]) async throws -> Bool {
        let schema = try await schema()
        return try await storage.execute(
            "revoke a token", "DELETE FROM \(schema).tokens WHERE digest = $1 RETURNING label",
            PostgresStorage.binds(ByteBuffer(bytes: digest))) > 0
    }

    /// Revokes every token of `device`; returns how many.
    @discardableResult
    public func revokeTokens(of device: DeviceIdentity) async throws -> Int {
        try await revoke("tokens", of: device, label: nil)
    }

    /// The labels and creation times of the device's tokens.
    public func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] {
        let schema = try await schema()
        return try await rows(
            "list tokens",
            "SELECT label, created_at FROM \(schema).tokens WHERE tenant = $1 AND device = $2 ORDER BY created_at, label",
            PostgresStorage.binds(device.tenant.rawValue, device.deviceUID)
        ) { rows in
            var result: [TokenInfo] = []
            for try await (label, created) in rows.decode((String, Int64).self) {
                result.append(TokenInfo(label: label, createdAt: created))
            }
            return result
        }
    }

    private func revoke(_ table: String, of device: DeviceIdentity, label: String?) async throws -> Int {
        let schema = try await schema()
        var binds = PostgresStorage.binds(device.tenant.rawValue, device.deviceUID)
        if let label { binds.append(label) }
        return try await storage.execute(
            "revoke \(table) of \(device.deviceUID)",
            "DELETE FROM \(schema).\(table) WHERE tenant = $1 AND device = $2" + (label == nil ? "" : " AND label = $3")
                + " RETURNING label", binds)
    }

    // MARK: Passwords

    /// Stores a password hash; a username belongs to one device, a label is unique per device.
    public func addPassword(_ credential: StoredPassword) async throws {
        guard !credential.username.isEmpty, !credential.hash.isEmpty else {
            throw IoTError(.invalidArgument, "a password credential needs a username and a password hash")
        }
        let schema = try await schema()
        let logger = self.logger
        try await storage.mapErrors("store a password credential") {
            try await storage.client.withTransaction(logger: logger) { c in
                // One username, one device: instances adding the same username at once wait for each other.
                try await c.query("SELECT pg_advisory_xact_lock(hashtext(\(credential.username)))", logger: logger)
                let owner = try await c.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT tenant, device FROM \(schema).passwords WHERE username = $1 LIMIT 1",
                        binds: PostgresStorage.binds(credential.username)), logger: logger)
                for try await (t, d) in owner.decode((String, String).self)
                where DeviceIdentity(tenant: TenantID(t), deviceUID: d) != credential.device {
                    throw IoTError(
                        .conflict, "username '\(credential.username)' belongs to another device; pick another")
                }
                try await c.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(schema).passwords(tenant, device, label, username, hash, created_at)
                            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING label
                            """,
                        binds: PostgresStorage.binds(
                            credential.device.tenant.rawValue, credential.device.deviceUID, credential.label,
                            credential.username, credential.hash, credential.createdAt)), logger: logger
                ).collectCount(
                    orThrow: IoTError(
                        .conflict,
                        "device already has a password credential labelled '\(credential.label)'; use another label"))
            }
        }
    }

    private func passwords(_ sql: String, _ binds: PostgresBindings) async throws -> [StoredPassword] {
        try await rows("read password credentials", sql, binds) { rows in
            var result: [StoredPassword] = []
            for try await (t, d, label, username, hash, created) in rows.decode(
                (String, String, String, String, String, Int64).self)
            {
                result.append(
                    StoredPassword(
                        device: DeviceIdentity(tenant: TenantID(t), deviceUID: d), username: username, hash: hash,
                        label: label, createdAt: created))
            }
            return result
        }
    }

    /// The password credentials of a username.
    public func passwords(forUsername username: String) async throws -> [StoredPassword] {
        let schema = try await schema()
        return try await passwords(
            "SELECT tenant, device, label, username, hash, created_at FROM \(schema).passwords WHERE username = $1 ORDER BY created_at, label",
            PostgresStorage.binds(username))
    }

    /// The password credentials of a device.
    public func passwords(of device: DeviceIdentity) async throws -> [StoredPassword] {
        let schema = try await schema()
        return try await passwords(
            "SELECT tenant, device, label, username, hash, created_at FROM \(schema).passwords WHERE tenant = $1 AND device = $2 ORDER BY created_at, label",
            PostgresStorage.binds(device.tenant.rawValue, device.deviceUID))
    }

    /// Revokes the device's password credential `label`.
    @discardableResult
    public func revokePassword(of device: DeviceIdentity, label: String) async throws -> Bool {
        try await revoke("passwords", of: device, label: label) > 0
    }

    /// Revokes every password credential of the device; returns how many.
    @discardableResult
    public func revokePasswords(of device: DeviceIdentity) async throws -> Int {
        try await revoke("passwords", of: device, label: nil)
    }

    // MARK: Certificates

    /// Stores a certificate credential; a certificate belongs to one device, a label is unique per device.
    public func addCertificate(_ credential: StoredCertificate) async throws {
        let value = try credential.match.normalize(credential.value)
        let schema = try await schema()
        let logger = self.logger
        try await storage.mapErrors("store a certificate credential") {
            try await storage.client.withTransaction(logger: logger) { c in
                let owner = try await c.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT tenant, device FROM \(schema).certificates WHERE kind = $1 AND value = $2",
                        binds: PostgresStorage.binds(credential.match.rawValue, value)), logger: logger)
                for try await (t, d) in owner.decode((String, String).self) {
                    throw IoTError(
                        .conflict,
                        DeviceIdentity(tenant: TenantID(t), deviceUID: d) == credential.device
                            ? "this certificate \(credential.match.rawValue) is already registered for the device"
                            : "this certificate \(credential.match.rawValue) belongs to another device; revoke it there first"
                    )
                }
                do {
                    try await c.query(
                        PostgresQuery(
                            unsafeSQL: """
                                INSERT INTO \(schema).certificates(tenant, device, label, kind, value, created_at)
                                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, device, label) DO NOTHING RETURNING label
                                """,
                            binds: PostgresStorage.binds(
                                credential.device.tenant.rawValue, credential.device.deviceUID, credential.label,
                                credential.match.rawValue, value, credential.createdAt)), logger: logger
                    ).collectCount(
                        orThrow: IoTError(
                            .conflict,
                            "device already has a certificate credential labelled '\(credential.label)'; use another label"
                        ))
                } catch  where PostgresStorage.isUniqueViolation(error) {
                    throw IoTError(
                        .conflict,
                        "this certificate \(credential.match.rawValue) belongs to another device; revoke it there first"
                    )
                }
            }
        }
    }

    /// The device a certificate identifies, or `nil`.
    public func identity(forCertificate match: CertificateMatch, value: String) async throws -> DeviceIdentity? {
        guard let normalized = try? match.normalize(value) else { return nil }
        let schema = try await schema()
        return try await rows(
            "look up a certificate", "SELECT tenant, device FROM \(schema).certificates WHERE kind = $1 AND value = $2",
            PostgresStorage.binds(match.rawValue, normalized)
        ) { rows in
            var found: DeviceIdentity?
            for try await (t, d) in rows.decode((String, String).self) {
                found = DeviceIdentity(tenant: TenantID(t), deviceUID: d)
            }
            return found
        }
    }

    /// The certificate credentials of a device.
    public func certificates(of device: DeviceIdentity) async throws -> [StoredCertificate] {
        let schema = try await schema()
        return try await rows(
            "read certificate credentials",
            "SELECT label, kind, value, created_at FROM \(schema).certificates WHERE tenant = $1 AND device = $2 ORDER BY created_at, label",
            PostgresStorage.binds(device.tenant.rawValue, device.deviceUID)
        ) { rows in
            var result: [StoredCertificate] = []
            for try await (label, kind, value, created) in rows.decode((String, String, String, Int64).self) {
                guard let match = CertificateMatch(rawValue: kind) else {
                    throw IoTError(
                        .storage,
                        "certificate credential '\(label)' has an unknown kind '\(kind)'; the database was changed outside iotd or is damaged"
                    )
                }
                result.append(
                    StoredCertificate(device: device, match: match, value: value, label: label, createdAt: created))
            }
            return result
        }
    }

    /// Revokes the device's certificate credential `label`.
    @discardableResult
    public func revokeCertificate(of device: DeviceIdentity, label: String) async throws -> Bool {
        try await revoke("certificates", of: device, label: label) > 0
    }

    /// Revokes every certificate credential of the device; returns how many.
    @discardableResult
    public func revokeCertificates(of device: DeviceIdentity) async throws -> Int {
        try await revoke("certificates", of: device, label: nil)
    }
}

extension PostgresRowSequence {
    /// Reads the rows; throws `error` when there were none (an `INSERT … ON CONFLICT DO NOTHING RETURNING` that
    /// inserted nothing).
    func collectCount(orThrow error: IoTError) async throws {
        var n = 0
        for try await _ in self { n += 1 }
        if n == 0 { throw error }
    }
}
