import Foundation
public import IoTCore
import PostgresNIO

/// A ``IoTCore/RegistryStore`` in PostgreSQL: tenants in the system schema, products and devices in each
/// tenant's schema, shared by every instance on the database.
///
/// Tables: `tenants(id, doc)` in the schema named by the prefix alone (component `registry.tenants`);
/// `products(id, doc)` and `devices(uid, product, department, doc)` in the tenant's (component `registry`),
/// each row's document the JSON of the ``IoTCore/Product`` or ``IoTCore/Device``, with the columns that are
/// searched beside it. Nothing is cached, so what one instance writes the others read at once. Each schema also
/// holds a `registry_revision` counter that statement triggers raise (``registryRevision(of:)``, version 2).
public final class PostgresRegistryStore: RegistryStore {
    let storage: PostgresStorage

    /// Creates a registry on `storage`; tables are created on first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let systemDDL = """
        CREATE TABLE IF NOT EXISTS {schema}.tenants(id text PRIMARY KEY, doc text NOT NULL);
        """ + revisionDDL(tables: ["tenants"])
    static let tenantDDL = """
        CREATE TABLE IF NOT EXISTS {schema}.products(id text PRIMARY KEY, doc text NOT NULL);
        CREATE TABLE IF NOT EXISTS {schema}.devices(
          uid text PRIMARY KEY, product text NOT NULL, department text, doc text NOT NULL);
        CREATE INDEX IF NOT EXISTS devices_product ON {schema}.devices(product, uid);
        CREATE INDEX IF NOT EXISTS devices_department ON {schema}.devices(department);
        """ + revisionDDL(tables: ["products", "devices"])

    /// A `registry_revision` counter in the schema, raised by every insert, update and delete of `tables`
    /// (version 2).
    static func revisionDDL(tables: [String]) -> String {
        PostgresStorage.revisionCounterDDL(
            "registry_revision", function: "registry_revised",
            raisedBy: tables.map { ($0, "INSERT OR UPDATE OR DELETE") })
    }

    private func system() async throws -> String {
        try await storage.systemSchema(component: "registry.tenants", version: 2, Self.systemDDL)
    }

    /// The tenant's schema, or `nil` when the tenant does not exist (no schema is created for it).
    private func existing(_ tenant: TenantID) async throws -> String? {
        guard tenant.isValid, try await self.tenant(tenant) != nil else { return nil }
        return try await storage.schema(of: tenant, component: "registry", version: 2, Self.tenantDDL)
    }

    private func require(_ tenant: TenantID, saving what: String) async throws -> String {
        guard let schema = try await existing(tenant) else {
            throw IoTError(.notFound, "cannot save \(what): tenant '\(tenant)' does not exist; save the tenant first")
        }
        return schema
    }

    private static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ text: String, _ what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch {
            throw IoTError(
                .storage,
                "the registry holds an unreadable \(what); the database was changed outside iotd or is damaged: \(error)"
            )
        }
    }

    /// The documents a query returns in its one text column.
    private func documents<T: Decodable>(
        _ type: T.Type, _ what: String, _ sql: String, _ binds: PostgresBindings = PostgresBindings()
    ) async throws -> [T] {
        try await storage.mapErrors("read \(what)") {
            let rows = try await storage.client.query(
                PostgresQuery(unsafeSQL: sql, binds: binds), logger: storage.logger)
            var result: [T] = []
            for try await doc in rows.decode(String.self) { result.append(try Self.decode(type, doc, what)) }
            return result
        }
    }

    /// The system schema's counter (changes of tenants) combined with the tenant schema's (its products and
    /// devices); `nil` for a tenant that does not exist (no schema is created for it).
    public func registryRevision(of tenant: TenantID) async throws -> UInt64? {
        let system = try await system()
        guard let schema = try await existing(tenant) else { return nil }
        return try await storage.mapErrors("read the registry revision") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL:
                        "SELECT (SELECT value FROM \(system).registry_revision WHERE id = 1), (SELECT value FROM \(schema).registry_revision WHERE id = 1)"
                ), logger: storage.logger)
            var revision: UInt64?
            for try await (tenants, own) in rows.decode((Int64, Int64).self) {
                revision = RevisionWatch.combined(UInt64(bitPattern: own), UInt64(bitPattern: tenants))
            }
            return revision
        }
    }

    // MARK: Tenants

    /// Adds or replaces a tenant.
    public func saveTenant(_ tenant: Tenant) async throws {
        guard tenant.id.isValid else {
            throw IoTError(
                .invalidArgument, "tenant id '\(tenant.id)' is not valid: use 1–64 characters of A–Z a–z 0–9 - _")
        }
        let schema = try await system()
        try await storage.execute(
            "save tenant \(tenant.id)",
            "INSERT INTO \(schema).tenants(id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            PostgresStorage.binds(tenant.id.rawValue, try Self.encode(tenant)))
    }

    /// The tenant `id`, or `nil`.
    public func tenant(_ id: TenantID) async throws -> Tenant? {
        let schema = try await system()
        return try await documents(
            Tenant.self, "tenant \(id)", "SELECT doc FROM \(schema).tenants WHERE id = $1",
            PostgresStorage.binds(id.rawValue)
        ).first
    }

    /// Every tenant, by id.
    public func tenants() async throws -> [Tenant] {
        let schema = try await system()
        return try await documents(Tenant.self, "the tenants", "SELECT doc FROM \(schema).tenants ORDER BY id")
    }

    /// Deletes the tenant's row and drops its schema (products, devices, points, rule state, definitions, outbox:
    /// everything kept per tenant); returns whether the tenant was there.
    @discardableResult
    public func deleteTenant(_ id: TenantID) async throws -> Bool {
        let schema = try await system()
        let removed = try await storage.execute(
            "delete tenant \(id)", "DELETE FROM \(schema).tenants WHERE id = $1 RETURNING id",
            PostgresStorage.binds(id.rawValue))
        if id.isValid { try await storage.deleteTenant(id) }
        return removed > 0
    }

    // MARK: Products

    /// Adds or replaces a product of an existing tenant.
    public func saveProduct(_ scope: AccessScope, _ product: Product) async throws {
        let schema = try await require(scope.tenant, saving: "product '\(product.id)'")
        try await storage.execute(
            "save product \(product.id)",
            "INSERT INTO \(schema).products(id, doc) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            PostgresStorage.binds(product.id.rawValue, try Self.encode(product)))
    }

    /// The product `id`, or `nil`.
    public func product(_ scope: AccessScope, id: ProductID) async throws -> Product? {
        guard let schema = try await existing(scope.tenant) else { return nil }
        return try await documents(
            Product.self, "product \(id)", "SELECT doc FROM \(schema).products WHERE id = $1",
            PostgresStorage.binds(id.rawValue)
        ).first
    }

    /// The tenant's products, by id.
    public func products(_ scope: AccessScope) async throws -> [Product] {
        guard let schema = try await existing(scope.tenant) else { return [] }
        return try await documents(Product.self, "the products", "SELECT doc FROM \(schema).products ORDER BY id")
    }

    /// Deletes a product no device uses; ``IoTCore/IoTError/Code/conflict`` while devices use it.
    @discardableResult
    public func deleteProduct(_ scope: AccessScope, id: ProductID) async throws -> Bool {
        guard let schema = try await existing(scope.tenant) else { return false }
        let logger = storage.logger
        return try await storage.mapErrors("delete product \(id)") {
            try await storage.client.withTransaction(logger: logger) { c in
                let used = try await c.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT count(*) FROM \(schema).devices WHERE product = $1",
                        binds: PostgresStorage.binds(id.rawValue)), logger: logger)
                var count: Int64 = 0
                for try await n in used.decode(Int64.self) { count = n }
                let rows = try await c.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT 1 FROM \(schema).products WHERE id = $1 FOR UPDATE",
                        binds: PostgresStorage.binds(id.rawValue)), logger: logger)
                var exists = false
                for try await _ in rows { exists = true }
                guard exists else { return false }
                if count > 0 {
                    throw IoTError(
                        .conflict,
                        "cannot delete product '\(id)': \(count) device(s) still use it; move or delete them first")
                }
                try await c.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(schema).products WHERE id = $1",
                        binds: PostgresStorage.binds(id.rawValue)),
                    logger: logger)
                return true
            }
        }
    }

    // MARK: Devices

    private static func forbidden(_ uid: String, _ scope: AccessScope) -> IoTError {
        IoTError(.forbidden, "device '\(uid)' is outside the access scope of this request in tenant '\(scope.tenant)'")
    }

    /// Adds or replaces a device of an existing tenant.
    public func saveDevice(_ scope: AccessScope, _ device: Device) async throws {
        try await saveDevices(scope, [device])
    }

    /// Saves the devices in one statement: all or none.
    public func saveDevices(_ scope: AccessScope, _ devices: [Device]) async throws {
        guard !devices.isEmpty else { return }
        for device in devices where !scope.permits(device: device.uid) { throw Self.forbidden(device.uid, scope) }
        let what = devices.count == 1 ? "device '\(devices[0].uid)'" : "\(devices.count) devices"
        let schema = try await require(scope.tenant, saving: what)
        // The last of a uid given twice wins, as one save after the other would.
        var latest: [String: Int] = [:]
        for (i, d) in devices.enumerated() { latest[d.uid] = i }
        let kept = devices.indices.filter { latest[devices[$0].uid] == $0 }.map { devices[$0] }
        try await storage.execute(
            "save \(what)",
            """
            INSERT INTO \(schema).devices(uid, product, department, doc)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(uid, product, department, doc)
            ON CONFLICT (uid) DO UPDATE
            SET product = excluded.product, department = excluded.department, doc = excluded.doc
            """,
            PostgresStorage.binds(
                kept.map(\.uid), kept.map(\.product.rawValue), kept.map { $0.department ?? "" },
                try kept.map(Self.encode)))
    }

    /// The device `uid`, or `nil` (also outside the scope).
    public func device(_ scope: AccessScope, uid: String) async throws -> Device? {
        guard scope.permits(device: uid), let schema = try await existing(scope.tenant) else { return nil }
        return try await documents(
            Device.self, "device \(uid)", "SELECT doc FROM \(schema).devices WHERE uid = $1",
            PostgresStorage.binds(uid)
        ).first
    }

    /// The tenant's devices in the scope (of `product` when given), by uid.
    public func devices(_ scope: AccessScope, product: ProductID?) async throws -> [Device] {
        guard let schema = try await existing(scope.tenant) else { return [] }
        let all: [Device]
        if let product {
            all = try await documents(
                Device.self, "the devices", "SELECT doc FROM \(schema).devices WHERE product = $1 ORDER BY uid",
                PostgresStorage.binds(product.rawValue))
        } else {
            all = try await documents(Device.self, "the devices", "SELECT doc FROM \(schema).devices ORDER BY uid")
        }
        return scope.devices == nil ? all : all.filter { scope.permits(device: $0.uid) }
    }

    /// The uids of the devices in any of `departments` or of any of `products`: one indexed query.
    public func deviceUIDs(_ scope: AccessScope, departments: Set<String>, products: Set<ProductID>) async throws
        -> Set<String>
    {
        guard !departments.isEmpty || !products.isEmpty, let schema = try await existing(scope.tenant) else {
            return []
        }
        return try await storage.mapErrors("read the devices of departments and products") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT uid FROM \(schema).devices
                        WHERE (department <> '' AND department = ANY($1::text[])) OR product = ANY($2::text[])
                        """, binds: PostgresStorage.binds(Array(departments), products.map(\.rawValue))),
                logger: storage.logger)
            var uids = Set<String>()
            for try await uid in rows.decode(String.self) where scope.permits(device: uid) { uids.insert(uid) }
            return uids
        }
    }

    /// Deletes a device; ``IoTCore/IoTError/Code/forbidden`` outside the scope.
    @discardableResult
    public func deleteDevice(_ scope: AccessScope, uid: String) async throws -> Bool {
        guard scope.permits(device: uid) else { throw Self.forbidden(uid, scope) }
        guard let schema = try await existing(scope.tenant) else { return false }
        return try await storage.execute(
            "delete device \(uid)", "DELETE FROM \(schema).devices WHERE uid = $1 RETURNING uid",
            PostgresStorage.binds(uid)) > 0
    }
}
