public import IoTCore
import Synchronization

/// The default ``RegistryStore``: tenants in the system database, products and devices in each
/// tenant's own database.
///
/// ```swift
/// let storage = try SQLiteStorage(configuration: .init(directory: "/var/lib/iotd"))
/// let registry = SQLiteRegistryStore(storage: storage)
/// try await registry.saveTenant(Tenant(id: "acme"))
/// try await registry.saveProduct(.tenant("acme"), Product(id: "meter", signals: [Signal(name: "kwh")]))
/// try await registry.saveDevice(.tenant("acme"), Device(uid: "meter-1", product: "meter"))
/// ```
///
/// Schema: `tenants(id, name, unknown_devices, register_product, unknown_signals)` in the system
/// database; `products(id, name, parser, description, signals, gateway)` and `devices(uid, product, name, tags,
/// department, push_interval_ms, signals, created_at, gateway)` in the tenant's, with signals, tags and the
/// gateway settings as JSON.
public final class SQLiteRegistryStore: RegistryStore {
    private let systemDatabase: PreparedDatabases
    private let tenantDatabases: PreparedDatabases
    /// The revision counters and their triggers (``registryRevision(of:)``), a component of their own so that
    /// they are added to databases of every earlier version.
    private let systemRevision: PreparedDatabases
    private let tenantRevision: PreparedDatabases
    /// Tenants known to exist. There is no tenant deletion, so an entry never goes stale.
    private let knownTenants = Mutex<Set<TenantID>>([])
    private let storage: SQLiteStorage
    /// Per tenant, its devices by department and by product (see ``deviceUIDs(_:departments:products:)``).
    let scopeIndexes = Mutex<[TenantID: DeviceScopeIndex]>([:])
    /// Per tenant, its devices decoded and sorted by uid: ``devices(_:product:)`` answers from it (a console lists
    /// 10,000 devices in a few milliseconds instead of decoding every row). Dropped by each write of a device.
    let deviceLists = Mutex<[TenantID: DeviceList]>([:])

    /// Creates a registry store on `storage`; tables are created on first use.
    public init(storage: SQLiteStorage) {
        systemDatabase = PreparedDatabases(
            storage: storage, component: "registry.tenants", version: 2, schema: Self.systemSchema)
        self.storage = storage
        tenantDatabases = PreparedDatabases(
            storage: storage, component: "registry", version: 2, schema: Self.tenantSchema)
        systemRevision = PreparedDatabases(
            storage: storage, component: "registry.tenants.revision", version: 1,
            schema: Self.revisionSchema(tables: ["tenants"]))
        tenantRevision = PreparedDatabases(
            storage: storage, component: "registry.revision", version: 1,
            schema: Self.revisionSchema(tables: ["products", "devices"]))
    }

    /// A `registry_revision` counter raised by every insert, update and delete of `tables`.
    private static func revisionSchema(tables: [String]) -> String {
        revisionCounterSchema(
            "registry_revision", raisedBy: tables.flatMap { t in ["INSERT", "UPDATE", "DELETE"].map { (t, $0) } })
    }

    private static let systemSchema = """
        CREATE TABLE IF NOT EXISTS tenants(
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            unknown_devices TEXT NOT NULL,
            register_product TEXT,
            unknown_signals TEXT NOT NULL
        ) WITHOUT ROWID;
        ALTER TABLE tenants ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
        ALTER TABLE tenants ADD COLUMN quotas TEXT;
        """

    /// Version 1 created the tables; version 2 (applied once, to new and older files alike) adds the
    /// `gateway` columns.
    private static let tenantSchema = """
        CREATE TABLE IF NOT EXISTS products(
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            parser TEXT,
            description TEXT,
            signals TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS devices(
            uid TEXT PRIMARY KEY NOT NULL,
            product TEXT NOT NULL,
            name TEXT NOT NULL,
            tags TEXT NOT NULL,
            department TEXT,
            push_interval_ms INTEGER,
            signals TEXT NOT NULL,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS devices_product ON devices(product, uid);
        ALTER TABLE products ADD COLUMN gateway TEXT;
        ALTER TABLE devices ADD COLUMN gateway TEXT;
        """

    private func systemDB() async throws -> SQLiteDatabase {
        _ = try await systemDatabase.system()
        return try await systemRevision.system()
    }

    private func tenantDB(_ tenant: TenantID) async throws -> SQLiteDatabase {
        _ = try await tenantDatabases.tenant(tenant)
        return try await tenantRevision.tenant(tenant)
    }

    /// The sum of two counters that triggers raise: the system database's on `tenants`, the tenant's own on
    /// `products` and `devices`. `nil` for a tenant that does not exist (no file is created for it).
    public func registryRevision(of tenant: TenantID) async throws -> UInt64? {
        let system = try await systemDB()
        guard let db = try await existingTenantDB(tenant) else { return nil }
        let tenants = try await system.read { try $0.revision("registry_revision") }
        return RevisionWatch.combined(try await db.read { try $0.revision("registry_revision") }, tenants)
    }

    /// The tenant's database, or `nil` when the tenant does not exist (no file is created for it).
    func existingTenantDB(_ tenant: TenantID) async throws -> SQLiteDatabase? {
        if knownTenants.withLock({ $0.contains(tenant) }) { return try await tenantDB(tenant) }
        guard try await self.tenant(tenant) != nil else { return nil }
        return try await tenantDB(tenant)
    }

    private func requireTenantDB(_ tenant: TenantID, saving what: String) async throws -> SQLiteDatabase {
        guard let db = try await existingTenantDB(tenant) else {
            throw IoTError(.notFound, "cannot save \(what): tenant '\(tenant)' does not exist; save the tenant first")
        }
        return db
    }

    // MARK: Tenants

    public func saveTenant(_ tenant: Tenant) async throws {
        guard tenant.id.isValid else {
            throw IoTError(
                .invalidArgument, "tenant id '\(tenant.id)' is not valid: use 1–64 characters of A–Z a–z 0–9 - _")
        }
        let quotas = try StoreJSON.encode(tenant.quotas)
        let db = try await systemDB()
        try await db.write { c in
            let s = try c.statement(
                """
                INSERT INTO tenants(id, name, unknown_devices, register_product, unknown_signals, status, quotas)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name, unknown_devices = excluded.unknown_devices,
                    register_product = excluded.register_product, unknown_signals = excluded.unknown_signals,
                    status = excluded.status, quotas = excluded.quotas
                """)
            s.bind(1, tenant.id.rawValue)
            s.bind(2, tenant.name)
            switch tenant.policy.unknownDevices {
            case .reject:
                s.bind(3, "reject")
                s.bindNull(4)
            case .register(let product):
                s.bind(3, "register")
                s.bind(4, product.rawValue)
            }
            s.bind(5, tenant.policy.unknownSignals.rawValue)
            s.bind(6, tenant.status.rawValue)
            s.bind(7, tenant.quotas.isEmpty ? nil : quotas)
            try s.run()
        }
        knownTenants.withLock { _ = $0.insert(tenant.id) }
    }

    public func tenant(_ id: TenantID) async throws -> Tenant? {
        let db = try await systemDB()
        let found = try await db.read { c in
            let s = try c.statement(
                "SELECT \(Self.tenantColumns) FROM tenants WHERE id = ?")
            defer { s.reset() }
            s.bind(1, id.rawValue)
            return try s.step() ? try Self.tenant(s) : nil
        }
        if found != nil { knownTenants.withLock { _ = $0.insert(id) } }
        return found
    }

    public func tenants() async throws -> [Tenant] {
        let db = try await systemDB()
        return try await db.read { c in
            let s = try c.statement(
                "SELECT \(Self.tenantColumns) FROM tenants ORDER BY id")
            defer { s.reset() }
            var result: [Tenant] = []
            while try s.step() { result.append(try Self.tenant(s)) }
            return result
        }
    }

    private static let tenantColumns = "id, name, unknown_devices, register_product, unknown_signals, status, quotas"

    /// Deletes the tenant's row and its database file (products, devices, points, rule state, definitions,
    /// outbox: everything kept per tenant); returns whether the tenant was there.
    public func deleteTenant(_ id: TenantID) async throws -> Bool {
        let db = try await systemDB()
        let removed = try await db.write { c in
            let s = try c.statement("DELETE FROM tenants WHERE id = ?")
            s.bind(1, id.rawValue)
            try s.run()
            return c.changes > 0
        }
        knownTenants.withLock { _ = $0.remove(id) }
        forgetScopeIndex(of: id)
        forgetDeviceList(of: id)
        try storage.deleteDatabase(of: id)
        return removed
    }

    private static func tenant(_ s: Statement) throws -> Tenant {
        let devices: IngestPolicy.UnknownDevices
        switch s.string(2) {
        case "reject": devices = .reject
        case "register": devices = .register(product: ProductID(s.string(3)))
        case let other: throw damaged("unknown_devices policy '\(other)'")
        }
        guard let signals = IngestPolicy.UnknownSignals(rawValue: s.string(4)) else {
            throw damaged("unknown_signals policy '\(s.string(4))'")
        }
        guard let status = Tenant.Status(rawValue: s.string(5)) else { throw damaged("tenant status '\(s.string(5))'") }
        return Tenant(
            id: TenantID(s.string(0)), name: s.string(1),
            policy: IngestPolicy(unknownDevices: devices, unknownSignals: signals), status: status,
            quotas: try s.optionalString(6).map { try StoreJSON.decode(TenantQuotas.self, from: $0) } ?? TenantQuotas())
    }

    private static func damaged(_ what: String) -> IoTError {
        IoTError(
            .storage, "the registry holds an unreadable \(what); the database was changed outside iotd or is damaged")
    }

    // MARK: Products

    public func saveProduct(_ scope: AccessScope, _ product: Product) async throws {
        let db = try await requireTenantDB(scope.tenant, saving: "product '\(product.id)'")
        let signals = try StoreJSON.encode(product.signals)
        let gateway = try GatewayColumn(gateway: product.gateway ? true : nil, gatewayFor: product.gatewayFor).encoded()
        try await db.write { c in
            let s = try c.statement(
                """
                INSERT INTO products(id, name, parser, description, signals, gateway) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name, parser = excluded.parser,
                    description = excluded.description, signals = excluded.signals, gateway = excluded.gateway
                """)
            s.bind(1, product.id.rawValue)
            s.bind(2, product.name)
            s.bind(3, product.parser)
            s.bind(4, product.description)
            s.bind(5, signals)
            s.bind(6, gateway)
            try s.run()
        }
    }

    public func product(_ scope: AccessScope, id: ProductID) async throws -> Product? {
        guard let db = try await existingTenantDB(scope.tenant) else { return nil }
        return try await db.read { c in
            let s = try c.statement("SELECT id, name, parser, description, signals, gateway FROM products WHERE id = ?")
            defer { s.reset() }
            s.bind(1, id.rawValue)
            return try s.step() ? try Self.product(s) : nil
        }
    }

    public func products(_ scope: AccessScope) async throws -> [Product] {
        guard let db = try await existingTenantDB(scope.tenant) else { return [] }
        return try await db.read { c in
            let s = try c.statement("SELECT id, name, parser, description, signals, gateway FROM products ORDER BY id")
            defer { s.reset() }
            var result: [Product] = []
            while try s.step() { result.append(try Self.product(s)) }
            return result
        }
    }

    @discardableResult
    public func deleteProduct(_ scope: AccessScope, id: ProductID) async throws -> Bool {
        guard let db = try await existingTenantDB(scope.tenant) else { return false }
        return try await db.write { c in
            try c.transaction {
                let exists = try c.statement("SELECT 1 FROM products WHERE id = ?")
                defer { exists.reset() }
                exists.bind(1, id.rawValue)
                guard try exists.step() else { return false }
                exists.reset()
                let used = try c.statement("SELECT count(*) FROM devices WHERE product = ?")
                defer { used.reset() }
                used.bind(1, id.rawValue)
                _ = try used.step()
                let count = used.int(0)
                if count > 0 {
                    throw IoTError(
                        .conflict,
                        "cannot delete product '\(id)': \(count) device(s) still use it; move or delete them first")
                }
                let s = try c.statement("DELETE FROM products WHERE id = ?")
                s.bind(1, id.rawValue)
                try s.run()
                return c.changes > 0
            }
        }
    }

    private static func product(_ s: Statement) throws -> Product {
        let gateway = try GatewayColumn.decode(s.optionalString(5))
        return Product(
            id: ProductID(s.string(0)), name: s.string(1),
            signals: try StoreJSON.decode([Signal].self, from: s.string(4)),
            parser: s.optionalString(2), description: s.optionalString(3), gateway: gateway.gateway ?? false,
            gatewayFor: gateway.gatewayFor)
    }

    // MARK: Devices

    private static func forbidden(_ uid: String, _ scope: AccessScope) -> IoTError {
        IoTError(.forbidden, "device '\(uid)' is outside the access scope of this request in tenant '\(scope.tenant)'")
    }

    /// Saves the devices in one transaction: all or none.
    public func saveDevices(_ scope: AccessScope, _ devices: [Device]) async throws {
        guard !devices.isEmpty else { return }
        try await upsert(scope, devices, saving: "\(devices.count) devices")
    }

    public func saveDevice(_ scope: AccessScope, _ device: Device) async throws {
        try await upsert(scope, [device], saving: "device '\(device.uid)'")
    }

    /// Creates or replaces `devices` in one transaction, then indexes their scope.
    private func upsert(_ scope: AccessScope, _ devices: [Device], saving what: String) async throws {
        for device in devices where !scope.permits(device: device.uid) { throw Self.forbidden(device.uid, scope) }
        let db = try await requireTenantDB(scope.tenant, saving: what)
        var rows: [(Device, String, String, String?)] = []
        rows.reserveCapacity(devices.count)
        for device in devices {
            rows.append(
                (
                    device, try StoreJSON.encode(device.tags), try StoreJSON.encode(device.signals),
                    try GatewayColumn(gateway: device.gateway, gatewayFor: device.gatewayFor).encoded()
                ))
        }
        try await db.write { [rows] c in
            try c.transaction {
                let s = try c.statement(
                    """
                    INSERT INTO devices(uid, product, name, tags, department, push_interval_ms, signals, created_at, gateway)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(uid) DO UPDATE SET product = excluded.product, name = excluded.name, tags = excluded.tags,
                        department = excluded.department, push_interval_ms = excluded.push_interval_ms,
                        signals = excluded.signals, created_at = excluded.created_at, gateway = excluded.gateway
                    """)
                for (device, tags, signals, gateway) in rows {
                    s.reset()
                    s.bind(1, device.uid)
                    s.bind(2, device.product.rawValue)
                    s.bind(3, device.name)
                    s.bind(4, tags)
                    s.bind(5, device.department)
                    s.bind(6, device.pushIntervalMillis)
                    s.bind(7, signals)
                    s.bind(8, device.createdAt)
                    s.bind(9, gateway)
                    try s.run()
                }
            }
        }
        for device in devices { indexScope(of: device, in: scope.tenant) }
        forgetDeviceList(of: scope.tenant)
    }

    private static let deviceColumns =
        "uid, product, name, tags, department, push_interval_ms, signals, created_at, gateway"

    public func device(_ scope: AccessScope, uid: String) async throws -> Device? {
        guard scope.permits(device: uid), let db = try await existingTenantDB(scope.tenant) else { return nil }
        return try await db.read { c in
            let s = try c.statement("SELECT \(Self.deviceColumns) FROM devices WHERE uid = ?")
            defer { s.reset() }
            s.bind(1, uid)
            return try s.step() ? try Self.device(s) : nil
        }
    }

    /// Answered from the tenant's devices kept in memory (read from the table on first use, and again after a
    /// write of a device; a second process writing the same file is not seen, and iotd never does that).
    public func devices(_ scope: AccessScope, product: ProductID?) async throws -> [Device] {
        guard let db = try await existingTenantDB(scope.tenant) else { return [] }
        let all: [Device]
        if let cached = deviceLists.withLock({ $0[scope.tenant]?.devices }) {
            all = cached
        } else {
            let generation = deviceLists.withLock { $0[scope.tenant]?.generation ?? 0 }
            all = try await db.read { c in
                let s = try c.statement("SELECT \(Self.deviceColumns) FROM devices ORDER BY uid")
                defer { s.reset() }
                var result: [Device] = []
                while try s.step() { result.append(try Self.device(s)) }
                return result
            }
            deviceLists.withLock { lists in
                if (lists[scope.tenant]?.generation ?? 0) == generation {
                    lists[scope.tenant] = DeviceList(devices: all, generation: generation)
                }
            }
        }
        guard product != nil || scope.devices != nil else { return all }
        return all.filter { (product == nil || $0.product == product) && scope.permits(device: $0.uid) }
    }

    @discardableResult
    public func deleteDevice(_ scope: AccessScope, uid: String) async throws -> Bool {
        guard scope.permits(device: uid) else { throw Self.forbidden(uid, scope) }
        guard let db = try await existingTenantDB(scope.tenant) else { return false }
        let deleted = try await db.write { c in
            let s = try c.statement("DELETE FROM devices WHERE uid = ?")
            s.bind(1, uid)
            try s.run()
            return c.changes > 0
        }
        unindexScope(of: uid, in: scope.tenant)
        forgetDeviceList(of: scope.tenant)
        return deleted
    }

    private static func device(_ s: Statement) throws -> Device {
        let gateway = try GatewayColumn.decode(s.optionalString(8))
        return Device(
            uid: s.string(0), product: ProductID(s.string(1)), name: s.string(2),
            tags: try StoreJSON.decode([String: String].self, from: s.string(3)),
            department: s.optionalString(4), pushIntervalMillis: s.optionalInt64(5),
            signals: try StoreJSON.decode([Signal].self, from: s.string(6)), createdAt: s.int64(7),
            gateway: gateway.gateway, gatewayFor: gateway.gatewayFor)
    }
}

/// The `gateway` column of products and devices: JSON, or NULL when neither field is set.
private struct GatewayColumn: Codable {
    var gateway: Bool?
    var gatewayFor: GatewayScope?

    func encoded() throws -> String? {
        gateway == nil && gatewayFor == nil ? nil : try StoreJSON.encode(self)
    }

    static func decode(_ text: String?) throws -> GatewayColumn {
        guard let text else { return GatewayColumn() }
        return try StoreJSON.decode(GatewayColumn.self, from: text)
    }
}
