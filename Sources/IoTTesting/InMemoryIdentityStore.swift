public import IoTCore
import Synchronization

/// An ``IoTCore/IdentityStore`` in memory: users, custom roles, departments and secret digests for a test of
/// sign-in, permissions or data scope with no database.
public final class InMemoryIdentityStore: IdentityStore {
    private struct State {
        var users: [String: UserAccount] = [:]
        var roles: [String: [String: Role]] = [:]
        var departments: [TenantID: [String: Department]] = [:]
        var secrets: [[UInt8]: IdentitySecret] = [:]
    }
    private let state = Mutex(State())

    /// Creates an empty store.
    public init() {}

    private static func key(_ tenant: TenantID?) -> String { tenant?.rawValue ?? "" }

    public func saveUser(_ user: UserAccount) async throws {
        state.withLock { $0.users[user.username] = user }
    }

    public func user(_ username: String) async throws -> UserAccount? {
        state.withLock { $0.users[username] }
    }

    public func users(tenant: TenantID?) async throws -> [UserAccount] {
        state.withLock { $0.users.values.filter { $0.tenant == tenant }.sorted { $0.username < $1.username } }
    }

    public func deleteUser(_ username: String) async throws -> Bool {
        state.withLock { s in
            s.secrets = s.secrets.filter { $0.value.username != username }
            return s.users.removeValue(forKey: username) != nil
        }
    }

    public func saveRole(_ role: Role, tenant: TenantID?) async throws {
        state.withLock { $0.roles[Self.key(tenant), default: [:]][role.id] = role }
    }

    public func roles(tenant: TenantID?) async throws -> [Role] {
        state.withLock { ($0.roles[Self.key(tenant)] ?? [:]).values.sorted { $0.id < $1.id } }
    }

    public func deleteRole(_ id: String, tenant: TenantID?) async throws -> Bool {
        state.withLock { $0.roles[Self.key(tenant)]?.removeValue(forKey: id) != nil }
    }

    public func saveDepartment(_ department: Department, tenant: TenantID) async throws {
        state.withLock { $0.departments[tenant, default: [:]][department.id] = department }
    }

    public func departments(tenant: TenantID) async throws -> [Department] {
        state.withLock { ($0.departments[tenant] ?? [:]).values.sorted { $0.id < $1.id } }
    }

    public func deleteDepartment(_ id: String, tenant: TenantID) async throws -> Bool {
        state.withLock { $0.departments[tenant]?.removeValue(forKey: id) != nil }
    }

    public func saveSecret(_ secret: IdentitySecret) async throws {
        state.withLock { $0.secrets[secret.digest] = secret }
    }

    public func secret(digest: [UInt8]) async throws -> IdentitySecret? {
        state.withLock { $0.secrets[digest] }
    }

    public func secrets(kind: IdentitySecret.Kind, tenant: TenantID?) async throws -> [IdentitySecret] {
        state.withLock { s in
            s.secrets.values.filter { $0.kind == kind && $0.tenant == tenant }.sorted { $0.id < $1.id }
        }
    }

    public func deleteSecret(digest: [UInt8]) async throws -> Bool {
        state.withLock { $0.secrets.removeValue(forKey: digest) != nil }
    }

    public func deleteSecrets(username: String, kinds: Set<IdentitySecret.Kind>?) async throws -> Int {
        state.withLock { s in
            let before = s.secrets.count
            s.secrets = s.secrets.filter { entry in
                entry.value.username != username || kinds.map { !$0.contains(entry.value.kind) } ?? false
            }
            return before - s.secrets.count
        }
    }

    public func deleteTenant(_ tenant: TenantID) async throws {
        state.withLock { s in
            s.users = s.users.filter { $0.value.tenant != tenant }
            s.roles[tenant.rawValue] = nil
            s.departments[tenant] = nil
            s.secrets = s.secrets.filter { $0.value.tenant != tenant }
        }
    }
}

/// An ``IoTCore/AuditStore`` in memory.
public final class InMemoryAuditStore: AuditStore {
    private let state = Mutex<(next: Int64, events: [AuditEvent])>((1, []))

    /// Creates an empty log.
    public init() {}

    @discardableResult
    public func append(_ event: AuditEvent) async throws -> AuditEvent {
        state.withLock { s in
            var stored = event
            stored.id = s.next
            s.next += 1
            s.events.append(stored)
            return stored
        }
    }

    public func events(_ query: AuditQuery) async throws -> [AuditEvent] {
        state.withLock { Array($0.events.lazy.filter(query.matches).prefix(max(query.limit, 0))) }
    }

    public func prune(before time: Int64) async throws -> Int {
        state.withLock { s in
            let before = s.events.count
            s.events.removeAll { $0.time < time }
            return before - s.events.count
        }
    }
}
