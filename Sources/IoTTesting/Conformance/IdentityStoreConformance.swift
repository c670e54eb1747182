public import IoTCore

/// The conformance suite of ``IoTCore/IdentityStore``: every line of its contract as a check.
///
/// ```swift
/// @Test(arguments: IdentityStoreConformance.checks)
/// func identity(_ check: ConformanceCheck<any IdentityStore>) async throws {
///     try await check.run(InMemoryIdentityStore())
/// }
/// ```
public enum IdentityStoreConformance {
    static func user(_ name: String, _ tenant: TenantID?) -> UserAccount {
        UserAccount(
            username: name, tenant: tenant, displayName: "Ü \(name)", email: "\(name)@example.com",
            roles: ["viewer", "shift-lead"], department: tenant == nil ? nil : "north",
            grants: DataGrants(devices: ["d-ü", "d-2"], products: ["thermo"]), status: .active,
            passwordHash: "$2b$04$abc", failedSignIns: 2, lockedUntil: 1_700_000_060_000,
            passwordChangedAt: 1_700_000_000_000, createdAt: 1_699_000_000_000)
    }

    static func secret(_ id: String, _ kind: IdentitySecret.Kind, tenant: TenantID?, user: String?) -> IdentitySecret {
        IdentitySecret(
            digest: Array(id.utf8) + [0, 255], kind: kind, id: id, tenant: tenant, username: user, name: "for \(id)",
            permissions: kind == .apiKey ? [.deviceRead, .dataRead] : [], createdAt: 1_700_000_000_000,
            expiresAt: kind == .apiKey ? nil : 1_700_000_900_000)
    }

    /// The checks.
    public static let checks: [ConformanceCheck<any IdentityStore>] = [
        ConformanceCheck("users round-trip every field; lists are per tenant, sorted by username") { store in
            let alice = user("alice", "acme")
            try await store.saveUser(user("zed", "acme"))
            try await store.saveUser(alice)
            try await store.saveUser(user("root", nil))
            try await store.saveUser(user("bob", "globex"))
            try conformEqual(try await store.user("alice"), alice, "alice")
            try conformEqual(try await store.user("nobody"), nil, "unknown user")
            try conformEqual(try await store.users(tenant: "acme").map(\.username), ["alice", "zed"], "acme's users")
            try conformEqual(try await store.users(tenant: nil).map(\.username), ["root"], "platform users")
            var changed = alice
            changed.status = .suspended
            changed.lockedUntil = nil
            try await store.saveUser(changed)
            try conformEqual(try await store.user("alice"), changed, "replaced by username")
        },
        ConformanceCheck("deleting a user deletes their secrets and nobody else's") { store in
            try await store.saveUser(user("alice", "acme"))
            try await store.saveUser(user("bob", "acme"))
            try await store.saveSecret(secret("r1", .refreshToken, tenant: "acme", user: "alice"))
            try await store.saveSecret(secret("k1", .apiKey, tenant: "acme", user: "alice"))
            try await store.saveSecret(secret("r2", .refreshToken, tenant: "acme", user: "bob"))
            try conformEqual(try await store.deleteUser("alice"), true, "first delete")
            try conformEqual(try await store.deleteUser("alice"), false, "second delete")
            try conformEqual(try await store.secret(digest: Array("r1".utf8) + [0, 255]), nil, "alice's token")
            try conformEqual(try await store.secret(digest: Array("k1".utf8) + [0, 255]), nil, "alice's key")
            try conformEqual(
                try await store.secret(digest: Array("r2".utf8) + [0, 255]),
                secret("r2", .refreshToken, tenant: "acme", user: "bob"), "bob's token")
        },
        ConformanceCheck("secrets round-trip by digest; lists are per kind and tenant; delete is by digest or user") {
            store in
            let key = secret("k1", .apiKey, tenant: "acme", user: nil)
            try await store.saveSecret(key)
            try await store.saveSecret(secret("k0", .apiKey, tenant: "acme", user: "alice"))
            try await store.saveSecret(secret("k2", .apiKey, tenant: nil, user: "root"))
            try await store.saveSecret(secret("a1", .activation, tenant: "acme", user: "alice"))
            try conformEqual(try await store.secret(digest: key.digest), key, "by digest")
            try conformEqual(try await store.secret(digest: [1, 2, 3]), nil, "unknown digest")
            try conformEqual(
                try await store.secrets(kind: .apiKey, tenant: "acme").map(\.id), ["k0", "k1"], "acme's keys")
            try conformEqual(try await store.secrets(kind: .apiKey, tenant: nil).map(\.id), ["k2"], "platform keys")
            try conformEqual(
                try await store.deleteSecrets(username: "alice", kinds: [.activation, .refreshToken]), 1,
                "alice's secrets of two kinds")
            try conformEqual(
                try await store.secrets(kind: .apiKey, tenant: "acme").map(\.id), ["k0", "k1"],
                "keys of other kinds stay")
            try await store.saveSecret(secret("a2", .activation, tenant: "acme", user: "alice"))
            try conformEqual(try await store.deleteSecrets(username: "alice"), 2, "alice's secrets of every kind")
            try conformEqual(try await store.deleteSecret(digest: key.digest), true, "first delete")
            try conformEqual(try await store.deleteSecret(digest: key.digest), false, "second delete")
        },
        ConformanceCheck("roles and departments are per tenant, sorted by id, replaced by id") { store in
            try await store.saveRole(Role(id: "shift-lead", permissions: [.alarmAck, .dataRead]), tenant: "acme")
            try await store.saveRole(Role(id: "auditor", name: "Auditor", permissions: [.auditRead]), tenant: "acme")
            try await store.saveRole(Role(id: "ops", permissions: [.tenantRead]), tenant: nil)
            try conformEqual(try await store.roles(tenant: "acme").map(\.id), ["auditor", "shift-lead"], "acme")
            try conformEqual(try await store.roles(tenant: "globex"), [], "globex")
            try conformEqual(try await store.roles(tenant: nil).map(\.id), ["ops"], "platform")
            try await store.saveRole(Role(id: "auditor", permissions: []), tenant: "acme")
            try conformEqual(try await store.roles(tenant: "acme").first?.permissions, [], "replaced")
            try conformEqual(try await store.deleteRole("auditor", tenant: "acme"), true, "deleted")
            try conformEqual(try await store.deleteRole("auditor", tenant: "acme"), false, "deleted twice")
            try await store.saveDepartment(Department(id: "north", name: "Nord"), tenant: "acme")
            try await store.saveDepartment(Department(id: "north-1", parent: "north"), tenant: "acme")
            try conformEqual(
                try await store.departments(tenant: "acme"),
                [Department(id: "north", name: "Nord"), Department(id: "north-1", parent: "north")], "departments")
            try conformEqual(try await store.departments(tenant: "globex"), [], "globex departments")
            try conformEqual(try await store.deleteDepartment("north-1", tenant: "acme"), true, "deleted")
        },
        ConformanceCheck("deleting a tenant removes its users, roles, departments and secrets, and nothing else") {
            store in
            try await store.saveUser(user("alice", "acme"))
            try await store.saveUser(user("bob", "globex"))
            try await store.saveUser(user("root", nil))
            try await store.saveRole(Role(id: "r", permissions: []), tenant: "acme")
            try await store.saveRole(Role(id: "r", permissions: []), tenant: "globex")
            try await store.saveDepartment(Department(id: "d"), tenant: "acme")
            try await store.saveSecret(secret("k1", .apiKey, tenant: "acme", user: nil))
            try await store.saveSecret(secret("k2", .apiKey, tenant: "globex", user: nil))
            try await store.deleteTenant("acme")
            try conformEqual(try await store.users(tenant: "acme"), [], "acme's users")
            try conformEqual(try await store.roles(tenant: "acme"), [], "acme's roles")
            try conformEqual(try await store.departments(tenant: "acme"), [], "acme's departments")
            try conformEqual(try await store.secrets(kind: .apiKey, tenant: "acme"), [], "acme's keys")
            try conformEqual(try await store.user("bob")?.username, "bob", "globex's user")
            try conformEqual(try await store.user("root")?.username, "root", "platform user")
            try conformEqual(try await store.roles(tenant: "globex").count, 1, "globex's role")
            try conformEqual(try await store.secrets(kind: .apiKey, tenant: "globex").count, 1, "globex's key")
        },
    ]
}

/// The conformance suite of ``IoTCore/AuditStore``.
public enum AuditStoreConformance {
    static func event(_ time: Int64, _ actor: String, _ tenant: TenantID?, _ action: String, _ status: Int)
        -> AuditEvent
    {
        AuditEvent(
            time: time, actor: actor, tenant: tenant, action: action, target: "/api/v1/x, \"quoted\"", status: status,
            client: "127.0.0.1")
    }

    /// The checks.
    public static let checks: [ConformanceCheck<any AuditStore>] = [
        ConformanceCheck("entries get increasing ids and round-trip; filters combine; limit and paging hold") { store in
            let a = try await store.append(event(1_000, "alice", "acme", "POST /api/v1/tenants/:tenant/devices", 201))
            let b = try await store.append(event(2_000, "bob", "globex", "auth.login", 401))
            let c = try await store.append(event(3_000, "alice", "acme", "auth.login", 200))
            let d = try await store.append(event(4_000, "root", nil, "POST /api/v1/tenants", 201))
            try conformEqual(a.id < b.id && b.id < c.id && c.id < d.id, true, "increasing ids")
            try conformEqual(try await store.events(AuditQuery()), [a, b, c, d], "everything, oldest first")
            try conformEqual(try await store.events(AuditQuery(tenant: "acme")), [a, c], "by tenant")
            try conformEqual(try await store.events(AuditQuery(actor: "alice", actionPrefix: "auth.")), [c], "actor")
            try conformEqual(try await store.events(AuditQuery(succeeded: false)), [b], "failures")
            try conformEqual(try await store.events(AuditQuery(from: 2_000, to: 4_000)), [b, c], "time range")
            try conformEqual(try await store.events(AuditQuery(limit: 2)), [a, b], "limit")
            try conformEqual(try await store.events(AuditQuery(after: b.id, limit: 1)), [c], "next page")
        },
        ConformanceCheck("prune removes what is older than the retention and nothing newer") { store in
            try await store.append(event(1_000, "a", "acme", "x", 200))
            try await store.append(event(2_000, "a", "acme", "x", 200))
            let kept = try await store.append(event(3_000, "a", "acme", "x", 200))
            try conformEqual(try await store.prune(before: 3_000), 2, "pruned")
            try conformEqual(try await store.events(AuditQuery()), [kept], "kept")
            let next = try await store.append(event(4_000, "a", "acme", "x", 200))
            try conformEqual(next.id > kept.id, true, "ids keep increasing after a prune")
        },
    ]
}
