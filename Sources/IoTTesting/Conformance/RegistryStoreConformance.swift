public import IoTCore

/// The conformance suite of ``RegistryStore``: every line of its contract as a check.
///
/// ```swift
/// @Test(arguments: RegistryStoreConformance.checks)
/// func registry(_ check: ConformanceCheck<any RegistryStore>) async throws {
///     try await check.run(InMemoryRegistryStore())
/// }
/// ```
///
/// Beyond the protocol's text, the suite also requires that writing a device outside the scope throws
/// ``IoTError/Code/forbidden`` and that reading from an unknown tenant returns nothing rather than
/// throwing.
public enum RegistryStoreConformance {
    typealias Support = StoresConformanceSupport

    static let acme = AccessScope.tenant("acme")
    static let globex = AccessScope.tenant("globex")

    static let fullSignal = Signal(name: "temp", type: .number, alias: "Supply air °C", unit: "°C", cacheSize: 16)
    static let product = Product(
        id: "chiller", name: "Chiller X2",
        signals: [fullSignal, Signal(name: "door", type: .bool), Signal(name: "fw", type: .text, alias: "Firmware")],
        parser: "senml", description: "Rooftop chiller, 2 circuits", gateway: true,
        gatewayFor: GatewayScope(products: ["sensor"], devices: ["probe-1"]))
    static let device = Device(
        uid: "chiller-7", product: "chiller", name: "Roof chiller 7",
        tags: ["site": "plant-1", "floor": "roof", "ünïcode": "✓"], department: "facilities/hvac",
        pushIntervalMillis: 60_000, signals: [Signal(name: "extra", type: .text, unit: "-", cacheSize: 2)],
        createdAt: 1_700_000_000_123, gateway: false, gatewayFor: GatewayScope(devices: ["probe-2"]))

    static func setUp(_ store: any RegistryStore) async throws {
        try await store.saveTenant(Tenant(id: "acme"))
        try await store.saveTenant(Tenant(id: "globex"))
    }

    /// The checks.
    public static let checks: [ConformanceCheck<any RegistryStore>] = [
        ConformanceCheck("tenants round-trip every field, replace by id and list sorted by id") { store in
            try conformEqual(try await store.tenants(), [], "tenants of an empty store")
            try conformEqual(try await store.tenant("nobody"), nil, "unknown tenant")
            let b = Tenant(id: "beta", name: "Beta Corp")
            let a = Tenant(
                id: "alpha", name: "Alpha",
                policy: IngestPolicy(unknownDevices: .register(product: "default"), unknownSignals: .ignore))
            try await store.saveTenant(b)
            try await store.saveTenant(a)
            try conformEqual(try await store.tenant("alpha"), a, "tenant with a register policy")
            try conformEqual(try await store.tenant("beta"), b, "tenant with the default policy")
            try conformEqual(try await store.tenants(), [a, b], "tenants sorted by id")
            let b2 = Tenant(
                id: "beta", name: "Beta 2", policy: IngestPolicy(unknownSignals: .register), status: .suspended,
                quotas: TenantQuotas(devices: 10, signals: 0, pointsPerDay: 1_000_000, mqttClients: 2))
            try await store.saveTenant(b2)
            try conformEqual(try await store.tenant("beta"), b2, "replaced tenant")
            try conformEqual(try await store.tenants(), [a, b2], "tenants after replace")
        },
        ConformanceCheck("deleting a tenant removes it with its products and devices; saving it again starts empty") {
            store in
            try await setUp(store)
            try await store.saveProduct(acme, product)
            try await store.saveDevice(acme, device)
            try await store.saveProduct(globex, product)
            try conformEqual(try await store.deleteTenant("acme"), true, "first delete")
            try conformEqual(try await store.deleteTenant("acme"), false, "second delete")
            try conformEqual(try await store.tenant("acme"), nil, "the tenant")
            try conformEqual(try await store.tenants().map(\.id), ["globex"], "the others")
            try conformEqual(try await store.products(globex).count, 1, "globex's product")
            try await store.saveTenant(Tenant(id: "acme"))
            try conformEqual(try await store.products(acme), [], "products of the new acme")
            try conformEqual(try await store.devices(acme, product: nil), [], "devices of the new acme")
        },
        ConformanceCheck("products round-trip every field, replace by id and list sorted by id") { store in
            try await setUp(store)
            try conformEqual(try await store.product(acme, id: "chiller"), nil, "missing product")
            let bare = Product(id: "a-bare")
            try await store.saveProduct(acme, product)
            try await store.saveProduct(acme, bare)
            try conformEqual(try await store.product(acme, id: "chiller"), product, "product with every field")
            try conformEqual(try await store.product(acme, id: "a-bare"), bare, "product with nil fields")
            try conformEqual(try await store.products(acme), [bare, product], "products sorted by id")
            var changed = product
            changed.name = "Chiller X3"
            changed.signals = [Signal(name: "temp", type: .text)]
            changed.parser = nil
            changed.description = nil
            try await store.saveProduct(acme, changed)
            try conformEqual(try await store.product(acme, id: "chiller"), changed, "replaced product")
            try conformEqual(try await store.products(acme).count, 2, "replacing adds no product")
        },
        ConformanceCheck("devices round-trip every field, replace by uid and list sorted by uid") { store in
            try await setUp(store)
            try await store.saveProduct(acme, product)
            let bare = Device(uid: "a-1", product: "chiller")
            try await store.saveDevice(acme, device)
            try await store.saveDevice(acme, bare)
            try conformEqual(try await store.device(acme, uid: "chiller-7"), device, "device with every field")
            try conformEqual(try await store.device(acme, uid: "a-1"), bare, "device with default fields")
            try conformEqual(try await store.device(acme, uid: "nope"), nil, "missing device")
            try conformEqual(try await store.devices(acme, product: nil), [bare, device], "devices sorted by uid")
            var changed = device
            changed.name = "Renamed"
            changed.tags = [:]
            changed.department = nil
            changed.pushIntervalMillis = nil
            changed.signals = []
            changed.createdAt = 5
            try await store.saveDevice(acme, changed)
            try conformEqual(try await store.device(acme, uid: "chiller-7"), changed, "replaced device")
            try conformEqual(
                try await store.devices(acme, product: nil), [bare, changed], "the listing after a change")
            try await store.saveDevices(acme, [Device(uid: "b-1", product: "chiller")])
            try conformEqual(
                try await store.devices(acme, product: nil).map(\.uid), ["a-1", "b-1", "chiller-7"],
                "the listing after a save")
            try await store.deleteDevice(acme, uid: "a-1")
            try conformEqual(
                try await store.devices(acme, product: nil).map(\.uid), ["b-1", "chiller-7"],
                "the listing after a deletion")
        },
        ConformanceCheck("devices(product:) returns only that product's devices") { store in
            try await setUp(store)
            try await store.saveDevice(acme, Device(uid: "m-2", product: "meter"))
            try await store.saveDevice(acme, Device(uid: "c-1", product: "chiller"))
            try await store.saveDevice(acme, Device(uid: "m-1", product: "meter"))
            let meters = try await store.devices(acme, product: "meter").map(\.uid)
            try conformEqual(meters, ["m-1", "m-2"], "meters, sorted")
            try conformEqual(try await store.devices(acme, product: "pump"), [], "devices of an unused product")
        },
        ConformanceCheck("deviceUIDs finds the devices of the departments and products named, within the scope") {
            store in
            try await setUp(store)
            try await store.saveDevice(acme, Device(uid: "d-1", product: "meter", department: "ops"))
            try await store.saveDevice(acme, Device(uid: "d-2", product: "meter", department: "ops/north"))
            try await store.saveDevice(acme, Device(uid: "d-3", product: "pump", department: "sales"))
            try await store.saveDevice(acme, Device(uid: "d-4", product: "pump"))
            try await store.saveDevice(acme, Device(uid: "d-5", product: "valve"))
            try await store.saveDevice(globex, Device(uid: "g-1", product: "pump", department: "ops"))
            try conformEqual(
                try await store.deviceUIDs(acme, departments: ["ops"], products: []), ["d-1"],
                "one department (not the departments below it: the caller names each)")
            try conformEqual(
                try await store.deviceUIDs(acme, departments: ["ops", "ops/north"], products: ["pump"]),
                ["d-1", "d-2", "d-3", "d-4"], "departments and a product, a device counted once")
            try conformEqual(
                try await store.deviceUIDs(acme, departments: [], products: []), [], "nothing named, nothing found")
            try conformEqual(
                try await store.deviceUIDs(
                    AccessScope(tenant: "acme", devices: ["d-2", "d-5"]), departments: ["ops", "ops/north"],
                    products: ["valve"]),
                ["d-2", "d-5"], "only the devices of a narrowed scope")
            try conformEqual(
                try await store.deviceUIDs(.tenant("ghost"), departments: ["ops"], products: ["pump"]), [],
                "a missing tenant")
            // Changes after a first answer are seen by the next (a store that keeps an index keeps it current).
            try await store.saveDevice(acme, Device(uid: "d-1", product: "valve", department: "sales"))
            _ = try await store.deleteDevice(acme, uid: "d-2")
            try await store.saveDevice(acme, Device(uid: "d-6", product: "meter", department: "ops"))
            try conformEqual(
                try await store.deviceUIDs(acme, departments: ["ops", "ops/north"], products: []), ["d-6"],
                "a device moved away, one deleted, one added")
            try conformEqual(
                try await store.deviceUIDs(acme, departments: ["sales"], products: ["valve"]), ["d-1", "d-3", "d-5"],
                "the moved device in its new department and product")
            _ = try await store.deleteTenant("acme")
            try await store.saveTenant(Tenant(id: "acme"))
            try conformEqual(
                try await store.deviceUIDs(acme, departments: ["sales"], products: ["valve"]), [],
                "a tenant deleted and made again starts empty")
        },
        ConformanceCheck("saving a product or device into a missing tenant throws notFound") { store in
            try await setUp(store)
            let ghost = AccessScope.tenant("ghost")
            try await Support.expectError(.notFound, "saveProduct in a missing tenant") {
                try await store.saveProduct(ghost, product)
            }
            try await Support.expectError(.notFound, "saveDevice in a missing tenant") {
                try await store.saveDevice(ghost, device)
            }
            try conformEqual(try await store.tenant("ghost"), nil, "no tenant is created by a failed save")
            try conformEqual(try await store.products(ghost), [], "products of a missing tenant")
            try conformEqual(try await store.devices(ghost, product: nil), [], "devices of a missing tenant")
            try conformEqual(try await store.device(ghost, uid: "chiller-7"), nil, "device of a missing tenant")
            try conformEqual(try await store.deleteDevice(ghost, uid: "x"), false, "delete in a missing tenant")
            try conformEqual(try await store.deleteProduct(ghost, id: "x"), false, "delete in a missing tenant")
        },
        ConformanceCheck("deleting a product that devices use throws conflict; unused ones delete") { store in
            try await setUp(store)
            try await store.saveProduct(acme, product)
            try await store.saveDevice(acme, device)
            try await Support.expectError(.conflict, "deleting a product in use") {
                try await store.deleteProduct(acme, id: "chiller")
            }
            try conformEqual(try await store.product(acme, id: "chiller"), product, "product kept after conflict")
            try conformEqual(try await store.deleteDevice(acme, uid: "chiller-7"), true, "delete existing device")
            try conformEqual(try await store.deleteDevice(acme, uid: "chiller-7"), false, "delete deleted device")
            try conformEqual(try await store.device(acme, uid: "chiller-7"), nil, "deleted device")
            try conformEqual(try await store.deleteProduct(acme, id: "chiller"), true, "delete unused product")
            try conformEqual(try await store.deleteProduct(acme, id: "chiller"), false, "delete deleted product")
            try conformEqual(try await store.product(acme, id: "chiller"), nil, "deleted product")
            try await store.saveDevice(acme, Device(uid: "orphan", product: "never-saved"))
            try conformEqual(
                try await store.deleteProduct(acme, id: "never-saved"), false, "a product that does not exist")
        },
        ConformanceCheck("a device scope hides devices outside it and counts them for product use") { store in
            try await setUp(store)
            try await store.saveProduct(acme, product)
            for uid in ["d-1", "d-2", "d-3"] { try await store.saveDevice(acme, Device(uid: uid, product: "chiller")) }
            try await store.saveDevice(acme, Device(uid: "m-1", product: "meter"))
            let scope = AccessScope(tenant: "acme", devices: ["d-1", "d-3", "m-1", "absent"])
            try conformEqual(
                try await store.devices(scope, product: nil).map(\.uid), ["d-1", "d-3", "m-1"], "scoped list")
            try conformEqual(
                try await store.devices(scope, product: "chiller").map(\.uid), ["d-1", "d-3"], "scoped list by product")
            try conformEqual(try await store.device(scope, uid: "d-2"), nil, "device outside the scope")
            try conformEqual(try await store.device(scope, uid: "d-1")?.uid, "d-1", "device inside the scope")
            let empty = AccessScope(tenant: "acme", devices: [])
            try conformEqual(try await store.devices(empty, product: nil), [], "empty scope")
            try await Support.expectError(.forbidden, "saving a device outside the scope") {
                try await store.saveDevice(scope, Device(uid: "d-2", product: "meter"))
            }
            try await Support.expectError(.forbidden, "deleting a device outside the scope") {
                try await store.deleteDevice(scope, uid: "d-2")
            }
            try conformEqual(try await store.device(acme, uid: "d-2")?.product, "chiller", "d-2 untouched")
            let narrow = AccessScope(tenant: "acme", devices: ["m-1"])
            try await Support.expectError(.conflict, "product used by a device outside the scope") {
                try await store.deleteProduct(narrow, id: "chiller")
            }
            try conformEqual(try await store.products(narrow), [product], "products are tenant-wide")
        },
        ConformanceCheck("tenants are isolated: same ids in two tenants never mix") { store in
            try await setUp(store)
            try await store.saveProduct(acme, product)
            try await store.saveDevice(acme, device)
            try conformEqual(try await store.products(globex), [], "other tenant's products")
            try conformEqual(try await store.devices(globex, product: nil), [], "other tenant's devices")
            try conformEqual(try await store.device(globex, uid: device.uid), nil, "other tenant's device")
            let theirs = Product(id: "chiller", name: "Globex chiller")
            try await store.saveProduct(globex, theirs)
            try await store.saveDevice(globex, Device(uid: device.uid, product: "chiller", name: "Globex 7"))
            try conformEqual(try await store.product(acme, id: "chiller"), product, "acme's product unchanged")
            try conformEqual(try await store.device(acme, uid: device.uid), device, "acme's device unchanged")
            try conformEqual(try await store.deleteDevice(globex, uid: device.uid), true, "delete globex's device")
            try conformEqual(try await store.device(acme, uid: device.uid), device, "acme's device survives")
            try conformEqual(try await store.deleteProduct(globex, id: "chiller"), true, "globex's product is unused")
            try conformEqual(try await store.product(acme, id: "chiller"), product, "acme's product survives")
        },
        ConformanceCheck(
            "a kept registryRevision changes on every save and delete of the tenant, a product or a device"
        ) {
            store in
            try await setUp(store)
            // Optional: a store without one (nil) has its devices read again after the cache lifetime.
            guard var last = try await store.registryRevision(of: "acme") else { return }
            func changed(_ what: String, _ change: () async throws -> Void) async throws {
                try await change()
                guard let now = try await store.registryRevision(of: "acme"), now != last else {
                    throw ConformanceFailure("registryRevision(of: acme) did not change after \(what)")
                }
                last = now
            }
            try await changed("saveProduct") { try await store.saveProduct(acme, product) }
            try await changed("saveDevice") { try await store.saveDevice(acme, device) }
            try await changed("saveDevice again (changed)") {
                var renamed = device
                renamed.name = "renamed"
                try await store.saveDevice(acme, renamed)
            }
            try await changed("deleteDevice") { _ = try await store.deleteDevice(acme, uid: device.uid) }
            try await changed("deleteProduct") { _ = try await store.deleteProduct(acme, id: product.id) }
            try await changed("saveTenant (changed)") {
                try await store.saveTenant(Tenant(id: "acme", name: "ACME renamed"))
            }
        },
    ]
}
