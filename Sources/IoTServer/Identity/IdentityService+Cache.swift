public import IoTCore
import Synchronization

/// What resolving credentials and data scopes found lately, so that a request costs neither a signature check
/// nor a query: a principal by credential and a data scope by user (for a second), a department tree by tenant
/// (for a minute: only the service changes departments).
///
/// Every change made through ``IdentityService`` (a user, role, department or API key changed, suspended or
/// deleted; a tenant suspended or deleted, a device created or moved through the management API) empties it at
/// once; a change made elsewhere (directly in the stores) is seen within ``IdentityCache/lifetime``, or within
/// ``IdentityCache/treeLifetime`` for departments.
struct IdentityCache: Sendable {
    /// How long an entry is used: the longest a change made outside the service goes unseen.
    static let lifetime: Duration = .seconds(1)
    /// How long a department tree is used.
    static let treeLifetime: Duration = .seconds(60)
    /// Entries kept at most per kind; past it the expired ones go, and if that is not enough, all.
    static let capacity = 10_000

    struct Entry<Value: Sendable>: Sendable {
        var value: Value
        var until: ContinuousClock.Instant
    }

    /// Counts ``IdentityService/forgetResolvedCredentials()``: what a resolution that began before the last one
    /// found is not kept (it may predate the change).
    var generation = 0
    var principals: [String: Entry<(principal: Principal, expiresAt: Int64?)>] = [:]
    var scopes: [String: Entry<(user: UserAccount, scope: DataScope)>] = [:]
    var departments: [TenantID: Entry<DepartmentTree>] = [:]

    static func insert<Key, Value>(
        _ value: Value, for key: Key, into entries: inout [Key: Entry<Value>], lifetime: Duration = lifetime
    ) {
        let now = ContinuousClock.now
        if entries.count >= capacity {
            entries = entries.filter { $0.value.until > now }
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        }
        entries[key] = Entry(value: value, until: now + lifetime)
    }

    static func lookup<Key, Value>(_ key: Key, in entries: [Key: Entry<Value>]) -> Value? {
        guard let entry = entries[key], entry.until > .now else { return nil }
        return entry.value
    }
}

/// A tenant's departments as parent → children, each subtree asked for kept until the tree is read again.
final class DepartmentTree: Sendable {
    private let children: [String: [String]]
    private let subtrees = Mutex<[String: Set<String>]>([:])

    init(_ departments: [Department]) {
        var children: [String: [String]] = [:]
        for d in departments { if let parent = d.parent { children[parent, default: []].append(d.id) } }
        self.children = children
    }

    /// `root` and every department below it.
    func subtree(of root: String) -> Set<String> {
        if let found = subtrees.withLock({ $0[root] }) { return found }
        var result: Set<String> = [root]
        var queue = [root]
        while let next = queue.popLast() {
            for child in children[next] ?? [] where result.insert(child).inserted { queue.append(child) }
        }
        subtrees.withLock { $0[root] = result }
        return result
    }
}

/// A user's data scope resolved: the devices they may see and the departments (their own and those below it).
struct DataScope: Sendable, Equatable {
    var devices: Set<String>
    var departments: Set<String>
}

extension IdentityService {
    /// Forgets every principal, data scope and department tree resolved lately, so that the next request reads
    /// them again. The service calls it after each change it makes; call it after changing users, roles,
    /// departments or tenants directly in the stores (or wait a second; a minute for departments).
    public func forgetResolvedCredentials() {
        cache.withLock { $0 = IdentityCache(generation: $0.generation + 1) }
    }

    /// The number of forgets so far: taken before a resolution, given to what keeps its answers.
    var cacheGeneration: Int { cache.withLock { $0.generation } }

    /// The principal `credential` resolved to less than a second ago, while the credential has not expired.
    func cachedPrincipal(_ credential: String) -> Principal? {
        guard let found = cache.withLock({ IdentityCache.lookup(credential, in: $0.principals) }) else { return nil }
        if let expiresAt = found.expiresAt, expiresAt <= clock.now() { return nil }
        return found.principal
    }

    /// Keeps the principal `credential` resolved to, valid until `expiresAt` (milliseconds since 1970), unless
    /// something was forgotten since `generation`.
    func remember(_ principal: Principal, for credential: String, expiresAt: Int64?, _ generation: Int) {
        cache.withLock {
            guard $0.generation == generation else { return }
            IdentityCache.insert((principal, expiresAt), for: credential, into: &$0.principals)
        }
    }

    /// The tenant's department tree, read again after a change through the service or after a minute.
    func departmentTree(of tenant: TenantID) async throws -> DepartmentTree {
        let (found, generation) = cache.withLock { (IdentityCache.lookup(tenant, in: $0.departments), $0.generation) }
        if let found { return found }
        let tree = DepartmentTree(try await store.departments(tenant: tenant))
        cache.withLock {
            guard $0.generation == generation else { return }
            IdentityCache.insert(tree, for: tenant, into: &$0.departments, lifetime: IdentityCache.treeLifetime)
        }
        return tree
    }

    /// What `user` may see: the devices of their department's subtree and those granted to them; `nil` (every
    /// device of the tenant) for a platform user and for a user with neither a department nor grants. The
    /// registry answers it from its department index (``IoTCore/RegistryStore/deviceUIDs(_:departments:products:)``);
    /// the answer is kept for a second per user.
    func dataScope(of user: UserAccount, _ generation: Int) async throws -> DataScope? {
        guard let tenant = user.tenant, user.department != nil || user.grants != nil else { return nil }
        if let found = cache.withLock({ IdentityCache.lookup(user.username, in: $0.scopes) }), found.user == user {
            return found.scope
        }
        let scope = try await resolveScope(of: user, tenant: tenant)
        cache.withLock {
            guard $0.generation == generation else { return }
            IdentityCache.insert((user, scope), for: user.username, into: &$0.scopes)
        }
        return scope
    }

    /// The devices `user` may see, resolved now rather than taken from the last second's answers (the
    /// department tree may still come from them; ``forgetResolvedCredentials()`` first for a cold answer): their
    /// department's subtree and their grants; `nil` for every device of their tenant.
    public func resolveDataScope(of user: UserAccount) async throws -> Set<String>? {
        guard let tenant = user.tenant, user.department != nil || user.grants != nil else { return nil }
        return try await resolveScope(of: user, tenant: tenant).devices
    }

    /// Resolves `user`'s data scope in `tenant` without the per-user cache (the department tree may come from
    /// its cache): the subtree of their department, then one registry query for its devices and the products
    /// granted to them.
    func resolveScope(of user: UserAccount, tenant: TenantID) async throws -> DataScope {
        var departments: Set<String> = []
        if let root = user.department {
            departments = try await departmentTree(of: tenant).subtree(of: root)
        }
        let grants = user.grants ?? DataGrants()
        var devices =
            try await registry?.deviceUIDs(.tenant(tenant), departments: departments, products: grants.products) ?? []
        devices.formUnion(grants.devices)
        return DataScope(devices: devices, departments: departments)
    }

    /// `root` and every department below it.
    static func subtree(of root: String, in departments: [Department]) -> Set<String> {
        DepartmentTree(departments).subtree(of: root)
    }
}
