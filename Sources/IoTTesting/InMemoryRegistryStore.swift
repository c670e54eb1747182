public import IoTCore
import Synchronization

/// A ``RegistryStore`` in memory, with the same semantics as the SQLite default.
///
/// ```swift
/// let registry = InMemoryRegistryStore()
/// try await registry.saveTenant(Tenant(id: "acme"))
/// try await registry.saveDevice(.tenant("acme"), Device(uid: "pump-1", product: "pump"))
/// ```
public final class InMemoryRegistryStore: RegistryStore {
    private struct TenantData {
        var tenant: Tenant
        var products: [ProductID: Product] = [:]
        var devices: [String: Device] = [:]
    }
    private let state = Mutex<[TenantID: TenantData]>([:])
    private let revision = Atomic<UInt64>(0)

    /// Creates an empty registry.
    public init() {}

    private static func forbidden(_ uid: String, _ scope: AccessScope) -> IoTError {
        IoTError(.forbidden, "device '\(uid)' is outside the access scope of this request in tenant '\(scope.tenant)'")
    }

    private static func missingTenant(_ tenant: TenantID, saving what: String) -> IoTError {
        IoTError(.notFound, "cannot save \(what): tenant '\(tenant)' does not exist; save the tenant first")
    }

    @discardableResult
    public func deleteTenant(_ id: TenantID) async throws -> Bool {
        defer { revision.add(1, ordering: .relaxed) }
        return state.withLock { $0.removeValue(forKey: id) != nil }
    }

    public func saveTenant(_ tenant: Tenant) async throws {
        defer { revision.add(1, ordering: .relaxed) }
        guard tenant.id.isValid else {
            throw IoTError(
                .invalidArgument, "tenant id '\(tenant.id)' is not valid: use 1–64 characters of A–Z a–z 0–9 - _")
        }
        state.withLock { s in
            if s[tenant.id] == nil {
                s[tenant.id] = TenantData(tenant: tenant)
            } else {
                s[tenant.id]!.tenant = tenant
            }
        }
    }

    /// One counter for every tenant, raised after each save and delete.
    public func registryRevision(of tenant: TenantID) async throws -> UInt64? { revision.load(ordering: .relaxed) }

    public func tenant(_ id: TenantID) async throws -> Tenant? {
        state.withLock { $0[id]?.tenant }
    }

    public func tenants() async throws -> [Tenant] {
        state.withLock { s in s.values.map(\.tenant).sorted { $0.id < $1.id } }
    }

    public func saveProduct(_ scope: AccessScope, _ product: Product) async throws {
        defer { revision.add(1, ordering: .relaxed) }
        try state.withLock { s throws(IoTError) in
            guard s[scope.tenant] != nil else {
                throw Self.missingTenant(scope.tenant, saving: "product '\(product.id)'")
            }
            s[scope.tenant]!.products[product.id] = product
        }
    }

    public func product(_ scope: AccessScope, id: ProductID) async throws -> Product? {
        state.withLock { $0[scope.tenant]?.products[id] }
    }

    public func products(_ scope: AccessScope) async throws -> [Product] {
        state.withLock { s in (s[scope.tenant]?.products.values).map { $0.sorted { $0.id < $1.id } } ?? [] }
    }

    @discardableResult
    public func deleteProduct(_ scope: AccessScope, id: ProductID) async throws -> Bool {
        defer { revision.add(1, ordering: .relaxed) }
        return try state.withLock { s throws(IoTError) in
            guard let data = s[scope.tenant], data.products[id] != nil else { return false }
            let users = data.devices.values.filter { $0.product == id }.count
            if users > 0 {
                throw IoTError(
                    .conflict,
                    "cannot delete product '\(id)': \(users) device(s) still use it; move or delete them first")
            }
            s[scope.tenant]!.products[id] = nil
            return true
        }
    }

    public func saveDevice(_ scope: AccessScope, _ device: Device) async throws {
        defer { revision.add(1, ordering: .relaxed) }
        guard scope.permits(device: device.uid) else { throw Self.forbidden(device.uid, scope) }
        try state.withLock { s throws(IoTError) in
            guard s[scope.tenant] != nil else {
                throw Self.missingTenant(scope.tenant, saving: "device '\(device.uid)'")
            }
            s[scope.tenant]!.devices[device.uid] = device
        }
    }

    public func device(_ scope: AccessScope, uid: String) async throws -> Device? {
        guard scope.permits(device: uid) else { return nil }
        return state.withLock { $0[scope.tenant]?.devices[uid] }
    }

    public func devices(_ scope: AccessScope, product: ProductID?) async throws -> [Device] {
        state.withLock { s in
            (s[scope.tenant].map { Array($0.devices.values) } ?? [])
                .filter { scope.permits(device: $0.uid) && (product == nil || $0.product == product) }
                .sorted { $0.uid < $1.uid }
        }
    }

    @discardableResult
    public func deleteDevice(_ scope: AccessScope, uid: String) async throws -> Bool {
        defer { revision.add(1, ordering: .relaxed) }
        guard scope.permits(device: uid) else { throw Self.forbidden(uid, scope) }
        return state.withLock { s in
            guard s[scope.tenant] != nil else { return false }
            return s[scope.tenant]!.devices.removeValue(forKey: uid) != nil
        }
    }
}
