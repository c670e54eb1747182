public import HummingbirdAuth
public import IoTCore

/// Who is calling the management API, as the authentication middleware resolved it: the bootstrap admin
/// key, a signed-in user, or an API key; with what they may do and which tenant they belong to.
public struct Principal: Sendable, Hashable, PermissionProviding {
    /// How the caller authenticated.
    public enum Kind: Sendable, Hashable {
        /// The bootstrap admin key of the configuration: the platform's first administrator.
        case adminKey
        /// A user, with an access token from `POST /api/v1/auth/login`.
        case user(String)
        /// An API key (its public id), of a user or of a tenant (`owner` `nil`).
        case apiKey(id: String, owner: String?)
    }

    /// How the caller authenticated.
    public var kind: Kind
    /// The caller's tenant; `nil` for a platform principal, who may work on every tenant.
    public var tenant: TenantID?
    /// What the caller may do.
    public var permissions: Set<Permission>
    /// The devices the caller may see within their tenant; `nil` for all of them (see ``AccessScope``).
    public var devices: Set<String>?
    /// The departments whose devices the caller may see and place devices in (their department's subtree);
    /// `nil` when ``devices`` is (the caller sees every device).
    public var departments: Set<String>?
    /// The caller's own department, where a device they create goes when it names none.
    public var department: String?

    /// Creates a principal.
    public init(
        kind: Kind, tenant: TenantID?, permissions: Set<Permission>, devices: Set<String>? = nil,
        departments: Set<String>? = nil, department: String? = nil
    ) {
        self.kind = kind
        self.tenant = tenant
        self.permissions = permissions
        self.devices = devices
        self.departments = departments
        self.department = department
    }

    /// The bootstrap admin key's principal: every permission, every tenant.
    public static let adminKey = Principal(kind: .adminKey, tenant: nil, permissions: Permission.all)

    /// The name the audit log gives the caller: the username, `api-key:<id>`, or `admin-key`.
    public var actor: String {
        switch kind {
        case .adminKey: "admin-key"
        case .user(let name): name
        case .apiKey(let id, _): "api-key:\(id)"
        }
    }

    /// The user behind the call (a user, or the owner of a user's API key).
    public var username: String? {
        switch kind {
        case .adminKey: nil
        case .user(let name): name
        case .apiKey(_, let owner): owner
        }
    }

    /// Whether the caller may work on `tenant`: a platform principal on every tenant, a tenant's on its own.
    public func mayAccess(_ tenant: TenantID) -> Bool { self.tenant.map { $0 == tenant } ?? true }

    /// The scope of the caller's queries on `tenant`: the whole tenant, or the devices they may see.
    public func scope(_ tenant: TenantID) -> AccessScope { AccessScope(tenant: tenant, devices: devices) }
}
