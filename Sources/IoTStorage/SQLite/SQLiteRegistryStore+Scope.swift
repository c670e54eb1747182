public import IoTCore
import Synchronization

/// A tenant's devices by department and by product, in memory: a user's data scope (the devices of a
/// department subtree and of granted products) is resolved from it without a query. It is built from the
/// `devices` table on the first resolution and kept current by the store's own writes; `generation` counts
/// those writes, so that a build racing one is not installed stale.
struct DeviceScopeIndex: Sendable {
    var byDepartment: [String: [String]] = [:]
    var byProduct: [ProductID: [String]] = [:]
    /// Each device's department and product, to move it when it changes.
    var placement: [String: (department: String?, product: ProductID)] = [:]
    /// Whether the index has been built (a tenant's entry may only count writes so far).
    var built = false
    var generation = 0

    mutating func add(uid: String, department: String?, product: ProductID) {
        remove(uid)
        placement[uid] = (department, product)
        if let department { byDepartment[department, default: []].append(uid) }
        byProduct[product, default: []].append(uid)
    }

    mutating func remove(_ uid: String) {
        guard let (department, product) = placement.removeValue(forKey: uid) else { return }
        if let department {
            byDepartment[department]?.removeAll { $0 == uid }
            if byDepartment[department]?.isEmpty == true { byDepartment[department] = nil }
        }
        byProduct[product]?.removeAll { $0 == uid }
        if byProduct[product]?.isEmpty == true { byProduct[product] = nil }
    }
}

/// A tenant's devices as ``SQLiteRegistryStore/devices(_:product:)`` lists them; `generation` counts the writes
/// of devices, so that a read racing one is not installed stale.
struct DeviceList: Sendable {
    var devices: [Device]?
    var generation = 0
}

extension SQLiteRegistryStore {
    /// Answered from an in-memory index of the tenant's devices by department and product, built from the table
    /// on first use and kept current by this store's writes (a second process writing the same file is not
    /// seen; iotd never does that).
    public func deviceUIDs(
        _ scope: AccessScope, departments: Set<String>, products: Set<ProductID>
    ) async throws -> Set<String> {
        guard !departments.isEmpty || !products.isEmpty else { return [] }
        let index: DeviceScopeIndex
        if let built = scopeIndexes.withLock({ $0[scope.tenant].flatMap { $0.built ? $0 : nil } }) {
            index = built
        } else {
            guard let loaded = try await loadScopeIndex(scope.tenant) else { return [] }
            index = loaded
        }
        let lists =
            departments.compactMap { index.byDepartment[$0] } + products.compactMap { index.byProduct[$0] }
        var result = Set<String>(minimumCapacity: lists.reduce(0) { $0 + $1.count })
        for uids in lists {
            for uid in uids { result.insert(uid) }
        }
        if scope.devices != nil { result = result.filter(scope.permits(device:)) }
        return result
    }

    /// Reads the tenant's devices' departments and products and installs the index unless a write came
    /// meanwhile; `nil` when the tenant does not exist.
    private func loadScopeIndex(_ tenant: TenantID) async throws -> DeviceScopeIndex? {
        let generation = scopeIndexes.withLock { $0[tenant]?.generation ?? 0 }
        guard let db = try await existingTenantDB(tenant) else { return nil }
        var index = try await db.read { c in
            let s = try c.statement("SELECT uid, department, product FROM devices")
            defer { s.reset() }
            var index = DeviceScopeIndex()
            while try s.step() {
                index.add(uid: s.fullText(0), department: s.optionalString(1), product: ProductID(s.fullText(2)))
            }
            return index
        }
        index.built = true
        index.generation = generation
        scopeIndexes.withLock { indexes in
            if (indexes[tenant]?.generation ?? 0) == generation { indexes[tenant] = index }
        }
        return index
    }

    /// Records a saved device in its tenant's index.
    func indexScope(of device: Device, in tenant: TenantID) {
        scopeIndexes.withLock { indexes in
            indexes[tenant, default: DeviceScopeIndex()].generation += 1
            if indexes[tenant]?.built == true {
                indexes[tenant]?.add(uid: device.uid, department: device.department, product: device.product)
            }
        }
    }

    /// Removes a deleted device from its tenant's index.
    func unindexScope(of uid: String, in tenant: TenantID) {
        scopeIndexes.withLock { indexes in
            indexes[tenant, default: DeviceScopeIndex()].generation += 1
            indexes[tenant]?.remove(uid)
        }
    }

    /// Drops a deleted tenant's index (its generation goes on, so that a build racing the deletion is dropped).
    func forgetScopeIndex(of tenant: TenantID) {
        scopeIndexes.withLock { indexes in
            indexes[tenant] = DeviceScopeIndex(generation: (indexes[tenant]?.generation ?? 0) + 1)
        }
    }

    /// Drops the tenant's listed devices after a write (the next listing reads the table again).
    func forgetDeviceList(of tenant: TenantID) {
        deviceLists.withLock { lists in
            lists[tenant] = DeviceList(devices: nil, generation: (lists[tenant]?.generation ?? 0) + 1)
        }
    }
}
