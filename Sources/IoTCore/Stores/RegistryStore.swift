/// Tenants, products and devices.
///
/// ## Implementing a registry store
/// - Tenants live in a system-wide place (the SQLite default keeps them in the system database);
///   products and devices in the tenant's own place. Nothing is visible across tenants.
/// - `save…` inserts or replaces by id. `delete…` returns whether something was deleted. Deleting a
///   product that devices still use throws ``IoTError/Code/conflict``.
/// - Saving a device or product of a tenant that does not exist throws ``IoTError/Code/notFound``.
/// - Device queries honour ``AccessScope/devices``.
/// - Pass `IoTTesting.RegistryStoreConformance` to check an implementation.
public protocol RegistryStore: Sendable {
    /// Creates or replaces a tenant.
    func saveTenant(_ tenant: Tenant) async throws
    /// The tenant, or `nil`.
    func tenant(_ id: TenantID) async throws -> Tenant?
    /// All tenants, sorted by id.
    func tenants() async throws -> [Tenant]

    /// Creates or replaces a product.
    func saveProduct(_ scope: AccessScope, _ product: Product) async throws
    /// The product, or `nil`.
    func product(_ scope: AccessScope, id: ProductID) async throws -> Product?
    /// All products of the tenant, sorted by id.
    func products(_ scope: AccessScope) async throws -> [Product]
    /// Deletes a product no device uses; `false` when it did not exist.
    @discardableResult
    func deleteProduct(_ scope: AccessScope, id: ProductID) async throws -> Bool

    /// Creates or replaces a device.
    func saveDevice(_ scope: AccessScope, _ device: Device) async throws
    /// Creates or replaces many devices at once (bulk provisioning), all or none when the store has
    /// transactions. The default saves them one by one with ``saveDevice(_:_:)``.
    func saveDevices(_ scope: AccessScope, _ devices: [Device]) async throws
    /// The device, or `nil` (also when outside the scope).
    func device(_ scope: AccessScope, uid: String) async throws -> Device?
    /// Devices in the scope, sorted by uid, optionally only those of `product`.
    func devices(_ scope: AccessScope, product: ProductID?) async throws -> [Device]
    /// The uids of the scope's devices that belong to one of `departments` or are of one of `products`: how a
    /// user's data scope is resolved (their department's subtree and the products granted to them), up to once a
    /// second per signed-in user. Answer it from an index (the SQLite store keeps one in memory); the default
    /// filters ``devices(_:product:)``.
    func deviceUIDs(_ scope: AccessScope, departments: Set<String>, products: Set<ProductID>) async throws
        -> Set<String>
    /// Deletes a device (not its points); `false` when it did not exist.
    @discardableResult
    func deleteDevice(_ scope: AccessScope, uid: String) async throws -> Bool
    /// Deletes a tenant with its products, devices and everything else kept per tenant in the same place (a
    /// file-per-tenant store removes the file); `false` when it did not exist.
    @discardableResult
    func deleteTenant(_ id: TenantID) async throws -> Bool

    /// A number that changes whenever the tenant, or one of its products or devices, is saved or deleted (also
    /// by another process sharing the store), or `nil` when the store keeps none (the default). The
    /// ingestor's device cache reads it about twice per ``Ingestor/Configuration/registryCacheLifetime`` for
    /// each tenant it holds devices of, off the devices' path, and keeps a device for as long as it stays the
    /// same: a device that reports less often than the lifetime is then not read again for every message.
    /// Make it one or two indexed reads; a tenant that does not exist may answer `nil`.
    func registryRevision(of tenant: TenantID) async throws -> UInt64?
}

extension RegistryStore {
    /// None: cached devices are read again after the cache lifetime.
    public func registryRevision(of tenant: TenantID) async throws -> UInt64? { nil }

    /// Saves the devices one by one with ``saveDevice(_:_:)``.
    public func saveDevices(_ scope: AccessScope, _ devices: [Device]) async throws {
        for device in devices { try await saveDevice(scope, device) }
    }

    /// Filters ``devices(_:product:)``: every device of the scope is read once.
    public func deviceUIDs(
        _ scope: AccessScope, departments: Set<String>, products: Set<ProductID>
    ) async throws -> Set<String> {
        guard !departments.isEmpty || !products.isEmpty else { return [] }
        return Set(
            try await devices(scope, product: nil).lazy.filter { device in
                device.department.map(departments.contains) == true || products.contains(device.product)
            }.map(\.uid))
    }
}

/// Device credentials, system-wide: a credential resolves to a tenant and device before anything else.
///
/// Secrets are never stored: tokens are kept as SHA-256 digests and looked up by index.
///
/// ## Implementing a credential store
/// - ``identity(forTokenDigest:)`` is on the ingest hot path: make it an indexed lookup.
/// - A device may have several tokens at once (rotation); ``revokeTokens(of:)`` removes them all.
/// - Pass `IoTTesting.CredentialStoreConformance` to check an implementation.
public protocol CredentialStore: Sendable {
    /// Stores the digest of a token for a device, with a label (`"primary"`, `"rotation-2026-11"`).
    func addToken(digest: [UInt8], for device: DeviceIdentity, label: String, createdAt: Int64) async throws
    /// Stores the digests of many tokens at once (bulk provisioning), all or none when the store has
    /// transactions. The default calls ``addToken(digest:for:label:createdAt:)`` for each.
    func addTokens(_ tokens: [(digest: [UInt8], device: DeviceIdentity)], label: String, createdAt: Int64)
        async throws
    /// The device a token digest belongs to, or `nil`.
    func identity(forTokenDigest digest: [UInt8]) async throws -> DeviceIdentity?
    /// Removes one token of a device; `false` when it was not there.
    @discardableResult
    func revokeToken(digest: [UInt8]) async throws -> Bool
    /// Removes every token of a device; returns how many.
    @discardableResult
    func revokeTokens(of device: DeviceIdentity) async throws -> Int
    /// Labels and creation times of a device's tokens (never the digests).
    func tokens(of device: DeviceIdentity) async throws -> [TokenInfo]

    // MARK: Username and password (defaults for token-only stores refuse to store any)

    /// Stores a password credential: the username and a slow-KDF hash of the password, never the password.
    ///
    /// A username belongs to one device: adding it for another device throws ``IoTError/Code/conflict``,
    /// and so does a second credential with the same label for the same device. A device may hold several
    /// (rotation: the authenticator keeps at most two).
    func addPassword(_ credential: StoredPassword) async throws
    /// The password credentials of a username, oldest first (empty when unknown). Hot path of a
    /// username/password login: make it an indexed lookup.
    func passwords(forUsername username: String) async throws -> [StoredPassword]
    /// The password credentials of a device, oldest first.
    func passwords(of device: DeviceIdentity) async throws -> [StoredPassword]
    /// Removes one password credential of a device by label; `false` when it was not there.
    @discardableResult
    func revokePassword(of device: DeviceIdentity, label: String) async throws -> Bool
    /// Removes every password credential of a device; returns how many.
    @discardableResult
    func revokePasswords(of device: DeviceIdentity) async throws -> Int

    // MARK: TLS client certificates (defaults for stores without them refuse to store any)

    /// Stores a certificate credential. Its (match, value) belongs to one device: adding it again throws
    /// ``IoTError/Code/conflict``, and so does a second certificate credential with the same label for the
    /// same device.
    func addCertificate(_ credential: StoredCertificate) async throws
    /// The device a certificate fingerprint or subject (normalized) belongs to, or `nil`. Hot path of a TLS
    /// client-certificate login: make it an indexed lookup.
    func identity(forCertificate match: CertificateMatch, value: String) async throws -> DeviceIdentity?
    /// The certificate credentials of a device, oldest first.
    func certificates(of device: DeviceIdentity) async throws -> [StoredCertificate]
    /// Removes one certificate credential of a device by label; `false` when it was not there.
    @discardableResult
    func revokeCertificate(of device: DeviceIdentity, label: String) async throws -> Bool
    /// Removes every certificate credential of a device; returns how many.
    @discardableResult
    func revokeCertificates(of device: DeviceIdentity) async throws -> Int

    // MARK: Change revision (the default keeps none)

    /// A number that changes whenever a token is changed or removed, and whenever a password or certificate
    /// credential is added, changed or removed (also by another process sharing the store); `nil` when the
    /// store keeps none. An authenticator passes it on as ``DeviceAuthenticator/credentialsRevision()``, so
    /// that the gateway's credential cache lives as long as it stays the same. Make it one indexed read.
    func credentialsRevision() async throws -> UInt64?
}

extension CredentialStore {
    /// Calls ``addToken(digest:for:label:createdAt:)`` for each token.
    public func addTokens(_ tokens: [(digest: [UInt8], device: DeviceIdentity)], label: String, createdAt: Int64)
        async throws
    {
        for t in tokens { try await addToken(digest: t.digest, for: t.device, label: label, createdAt: createdAt) }
    }

    /// Default for stores that keep only tokens: refuses with ``IoTError/Code/invalidArgument``.
    public func addPassword(_ credential: StoredPassword) async throws {
        throw IoTError(
            .invalidArgument, "\(type(of: self)) does not store password credentials; use a store that does (SQLite)")
    }
    /// Default for stores that keep only tokens: no passwords.
    public func passwords(forUsername username: String) async throws -> [StoredPassword] { [] }
    /// Default for stores that keep only tokens: no passwords.
    public func passwords(of device: DeviceIdentity) async throws -> [StoredPassword] { [] }
    /// Default for stores that keep only tokens: nothing to revoke.
    @discardableResult
    public func revokePassword(of device: DeviceIdentity, label: String) async throws -> Bool { false }
    /// Default for stores that keep only tokens: nothing to revoke.
    @discardableResult
    public func revokePasswords(of device: DeviceIdentity) async throws -> Int { 0 }
    /// Default for stores without certificate credentials: refuses with ``IoTError/Code/invalidArgument``.
    public func addCertificate(_ credential: StoredCertificate) async throws {
        throw IoTError(
            .invalidArgument, "\(type(of: self)) does not store certificate credentials; use a store that does (SQLite)"
        )
    }
    /// Default for stores without certificate credentials: no device.
    public func identity(forCertificate match: CertificateMatch, value: String) async throws -> DeviceIdentity? { nil }
    /// Default for stores without certificate credentials: none.
    public func certificates(of device: DeviceIdentity) async throws -> [StoredCertificate] { [] }
    /// Default for stores without certificate credentials: nothing to revoke.
    @discardableResult
    public func revokeCertificate(of device: DeviceIdentity, label: String) async throws -> Bool { false }
    /// Default for stores without certificate credentials: nothing to revoke.
    @discardableResult
    public func revokeCertificates(of device: DeviceIdentity) async throws -> Int { 0 }
    /// Default: no revision (lookups are reused for the gateway's cache lifetime only).
    public func credentialsRevision() async throws -> UInt64? { nil }
}

/// A stored username/password credential. ``hash`` is the encoded output of a slow key-derivation
/// function (for example `pbkdf2-sha256$600000$<salt>$<key>`); the password itself is never stored.
public struct StoredPassword: Sendable, Hashable {
    /// The device the credential belongs to.
    public var device: DeviceIdentity
    /// The username the device logs in with; unique across devices.
    public var username: String
    /// The encoded password hash (algorithm, parameters, salt and derived key).
    public var hash: String
    /// The label (`"primary"`, `"rotation-2026-11"`); unique per device.
    public var label: String
    /// When it was created (UTC ms).
    public var createdAt: Int64

    /// Creates a stored credential.
    public init(device: DeviceIdentity, username: String, hash: String, label: String, createdAt: Int64) {
        self.device = device
        self.username = username
        self.hash = hash
        self.label = label
        self.createdAt = createdAt
    }
}

/// What is shown about a stored token.
public struct TokenInfo: Sendable, Hashable, Codable {
    /// The label given when the token was issued.
    public var label: String
    /// When it was issued (UTC ms).
    public var createdAt: Int64
    /// Creates token info.
    public init(label: String, createdAt: Int64) {
        self.label = label
        self.createdAt = createdAt
    }
}
