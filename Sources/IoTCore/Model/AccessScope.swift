/// What a query may see. Every store query takes one, so data scope is enforced in the store.
///
/// Today a scope is a tenant, optionally narrowed to a set of devices; later, users' department
/// subtrees and grants are resolved into the same shape before a query runs.
///
/// ```swift
/// let all = AccessScope.tenant("acme")
/// let two = AccessScope(tenant: "acme", devices: ["pump-1", "pump-2"])
/// ```
public struct AccessScope: Sendable, Hashable {
    /// The tenant queried. A scope never spans tenants.
    public var tenant: TenantID
    /// The devices visible, or `nil` for every device of the tenant.
    public var devices: Set<String>?

    /// Creates a scope.
    public init(tenant: TenantID, devices: Set<String>? = nil) {
        self.tenant = tenant
        self.devices = devices
    }

    /// The whole tenant.
    public static func tenant(_ id: TenantID) -> AccessScope { AccessScope(tenant: id) }

    /// Whether the scope lets the caller see `device`.
    public func permits(device: String) -> Bool {
        devices.map { $0.contains(device) } ?? true
    }
}
