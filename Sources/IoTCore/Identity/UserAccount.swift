/// A person who signs in to the management API: a platform user (``tenant`` `nil`), who may work on every
/// tenant, or a tenant user, who sees only their tenant.
///
/// Usernames are unique across the platform, so signing in needs no tenant. The password is kept only as a
/// slow hash (``passwordHash``); a user made without one is ``Status/pending`` until they set it through the
/// one-time activation link the platform sends them.
public struct UserAccount: Sendable, Hashable, Codable {
    /// Whether a user may sign in.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Made, with no password yet: the activation link sets one.
        case pending
        /// May sign in.
        case active
        /// Refused at sign-in and on every call, until an administrator makes the user active again.
        case suspended
    }

    /// The sign-in name: 3 to 64 of `a-z A-Z 0-9 . _ @ -`, unique across the platform.
    public var username: String
    /// The user's tenant; `nil` for a platform user.
    public var tenant: TenantID?
    /// What it says on a screen.
    public var displayName: String
    /// Where activation and password-reset links go (through the tenant's notification outbox), and the
    /// user's address on email channels.
    public var email: String?
    /// The user's number on SMS and voice channels.
    public var phone: String?
    /// The user's address on other channels, by channel name (a chat id on `ops-dingtalk`, an inbox name on
    /// `inbox`); it wins over ``email`` and ``phone`` on its channel.
    public var contacts: [String: String]?
    /// The ids of the user's roles (built-in or the tenant's own); the user may do what any of them allows.
    public var roles: [String]
    /// The user's department (an id in the tenant's department tree); `nil` for none. With a department or
    /// ``grants``, the user sees the devices of the department's subtree and the granted ones only; with
    /// neither, every device of the tenant.
    public var department: String?
    /// Devices and products granted to the user besides their department's.
    public var grants: DataGrants?
    /// Whether the user may sign in.
    public var status: Status
    /// The slow hash of the password (bcrypt); `nil` until one is set.
    public var passwordHash: String?
    /// Failed sign-ins in a row since the last success.
    public var failedSignIns: Int
    /// Until when (milliseconds since 1970) sign-in is refused after too many failures; `nil` when not locked.
    public var lockedUntil: Int64?
    /// When the password was last set (milliseconds since 1970).
    public var passwordChangedAt: Int64?
    /// When the user was made (milliseconds since 1970).
    public var createdAt: Int64

    /// Creates a user record.
    public init(
        username: String, tenant: TenantID?, displayName: String? = nil, email: String? = nil, roles: [String],
        department: String? = nil, grants: DataGrants? = nil, status: Status = .pending, passwordHash: String? = nil,
        failedSignIns: Int = 0,
        lockedUntil: Int64? = nil, passwordChangedAt: Int64? = nil, createdAt: Int64
    ) {
        self.username = username
        self.tenant = tenant
        self.displayName = displayName ?? username
        self.email = email
        self.roles = roles
        self.department = department
        self.grants = grants
        self.status = status
        self.passwordHash = passwordHash
        self.failedSignIns = failedSignIns
        self.lockedUntil = lockedUntil
        self.passwordChangedAt = passwordChangedAt
        self.createdAt = createdAt
    }
}

/// Devices granted to a user outside their department: by uid, and every device of a product.
public struct DataGrants: Sendable, Hashable, Codable {
    /// Device uids.
    public var devices: Set<String>
    /// Product ids: every device of these products.
    public var products: Set<ProductID>

    /// Creates grants.
    public init(devices: Set<String> = [], products: Set<ProductID> = []) {
        self.devices = devices
        self.products = products
    }

    private enum CodingKeys: String, CodingKey { case devices, products }

    /// Reads `{"devices": […], "products": […]}`; either may be left out.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        devices = try c.decodeIfPresent(Set<String>.self, forKey: .devices) ?? []
        products = try c.decodeIfPresent(Set<ProductID>.self, forKey: .products) ?? []
    }
}

/// A secret the platform handed out and keeps only as a digest: a refresh token, an API key, or a
/// one-time activation or password-reset link.
///
/// The secret itself is shown once, when it is made; the store keeps its SHA-256 ``digest`` and looks it up
/// by that. Revoking a secret deletes it.
public struct IdentitySecret: Sendable, Hashable, Codable {
    /// What a secret is for.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// Exchanged for a new access token (and a new refresh token: each is used once).
        case refreshToken = "refresh-token"
        /// Sent as `X-API-Key` or a bearer token by a program, with ``permissions``.
        case apiKey = "api-key"
        /// Sets a pending user's first password, once.
        case activation
        /// Sets a new password, once.
        case passwordReset = "password-reset"
    }

    /// The SHA-256 digest of the secret.
    public var digest: [UInt8]
    /// What the secret is for.
    public var kind: Kind
    /// A public id to list and revoke it by (the secret's first characters for an API key).
    public var id: String
    /// The tenant it belongs to; `nil` for the platform.
    public var tenant: TenantID?
    /// The user it belongs to; `nil` for a tenant's own API key.
    public var username: String?
    /// What it says in a listing (an API key's purpose).
    public var name: String
    /// For an API key: what it may do (never more than its owner may).
    public var permissions: Set<Permission>
    /// When it was made (milliseconds since 1970).
    public var createdAt: Int64
    /// When it stops working (milliseconds since 1970); `nil` for never.
    public var expiresAt: Int64?

    /// Creates a secret record.
    public init(
        digest: [UInt8], kind: Kind, id: String, tenant: TenantID?, username: String?, name: String = "",
        permissions: Set<Permission> = [], createdAt: Int64, expiresAt: Int64?
    ) {
        self.digest = digest
        self.kind = kind
        self.id = id
        self.tenant = tenant
        self.username = username
        self.name = name
        self.permissions = permissions
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    /// Whether the secret has expired at `now`.
    public func isExpired(at now: Int64) -> Bool { expiresAt.map { now >= $0 } ?? false }
}

/// A department of a tenant's tree. A user belongs to one; their data scope is the devices of their
/// department's subtree plus what is granted to them.
public struct Department: Sendable, Hashable, Codable {
    /// The department's id, unique within its tenant.
    public var id: String
    /// What it says on a screen.
    public var name: String
    /// The parent department; `nil` for a root.
    public var parent: String?

    /// Creates a department.
    public init(id: String, name: String? = nil, parent: String? = nil) {
        self.id = id
        self.name = name ?? id
        self.parent = parent
    }

    private enum CodingKeys: String, CodingKey { case id, name, parent }

    /// Reads `{"id": …, "name": …, "parent": …}`; the name defaults to the id.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id), name: try c.decodeIfPresent(String.self, forKey: .name),
            parent: try c.decodeIfPresent(String.self, forKey: .parent))
    }
}

/// Where users, custom roles, departments and the digests of handed-out secrets are kept: the platform's
/// identity, in the system database (one store for every tenant, as device credentials are).
///
/// ## Implementing an identity store
/// - Usernames are unique across tenants; ``saveUser(_:)`` inserts or replaces by username.
/// - ``users(tenant:)`` with `nil` lists the platform users; the lists are sorted by username, roles and
///   departments by id.
/// - Secrets are looked up by digest; ``deleteSecrets(username:kinds:)`` removes the secrets of a user
///   (signing out everywhere, a deleted user).
/// - ``deleteTenant(_:)`` removes everything of one tenant and nothing else.
/// - Pass `IoTTesting.IdentityStoreConformance` to check an implementation.
public protocol IdentityStore: Sendable {
    /// Inserts or replaces a user.
    func saveUser(_ user: UserAccount) async throws
    /// The user with `username`, of any tenant.
    func user(_ username: String) async throws -> UserAccount?
    /// The users of a tenant (`nil`: the platform users), sorted by username.
    func users(tenant: TenantID?) async throws -> [UserAccount]
    /// Deletes a user and every secret of theirs; returns whether the user was there.
    func deleteUser(_ username: String) async throws -> Bool

    /// Inserts or replaces a custom role of a tenant (`nil`: of the platform).
    func saveRole(_ role: Role, tenant: TenantID?) async throws
    /// The custom roles of a tenant, sorted by id.
    func roles(tenant: TenantID?) async throws -> [Role]
    /// Deletes a custom role; returns whether it was there.
    func deleteRole(_ id: String, tenant: TenantID?) async throws -> Bool

    /// Inserts or replaces a department of a tenant.
    func saveDepartment(_ department: Department, tenant: TenantID) async throws
    /// The departments of a tenant, sorted by id.
    func departments(tenant: TenantID) async throws -> [Department]
    /// Deletes a department; returns whether it was there.
    func deleteDepartment(_ id: String, tenant: TenantID) async throws -> Bool

    /// Stores a secret's record.
    func saveSecret(_ secret: IdentitySecret) async throws
    /// The secret whose digest is `digest`.
    func secret(digest: [UInt8]) async throws -> IdentitySecret?
    /// The secrets of one kind of a tenant (`nil`: the platform's), sorted by id.
    func secrets(kind: IdentitySecret.Kind, tenant: TenantID?) async throws -> [IdentitySecret]
    /// Deletes one secret; returns whether it was there.
    func deleteSecret(digest: [UInt8]) async throws -> Bool
    /// Deletes the secrets of a user of `kinds` (`nil`: of every kind); returns how many there were.
    func deleteSecrets(username: String, kinds: Set<IdentitySecret.Kind>?) async throws -> Int

    /// Deletes every user, role, department and secret of a tenant.
    func deleteTenant(_ tenant: TenantID) async throws
}

extension IdentityStore {
    /// Deletes every secret of a user; returns how many there were.
    public func deleteSecrets(username: String) async throws -> Int {
        try await deleteSecrets(username: username, kinds: nil)
    }
}
