public import IoTCore
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The SQLite files of an installation: one small system database and one database per tenant.
///
/// Every SQLite store (`SQLitePointStore`, `SQLiteRegistryStore`, …) takes the same `SQLiteStorage`,
/// so they share connections: one writer and one reader per file, each on its own thread.
///
/// ```swift
/// let storage = try SQLiteStorage(configuration: .init(directory: "/var/lib/iotd"), logger: logger)
/// let points = SQLitePointStore(storage: storage)
/// ```
///
/// Layout: `<directory>/system.sqlite` and `<directory>/tenants/<tenant>.sqlite`, all in WAL mode with
/// `synchronous=NORMAL` (durable across a process crash; the journal's `fsync` policy covers power loss).
public final class SQLiteStorage: Sendable {
    /// Where the files live and how they are opened.
    public struct Configuration: Sendable {
        /// The data directory; created if missing. Default `./data`.
        public var directory: String
        /// SQLite page cache per connection, in KiB. Default 16 384 (16 MiB).
        public var cacheSizeKiB: Int
        /// Creates a configuration.
        public init(directory: String = "./data", cacheSizeKiB: Int = 16_384) {
            self.directory = directory
            self.cacheSizeKiB = cacheSizeKiB
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    let logger: Logger
    let system: SQLiteDatabase
    private let tenants = Mutex<[TenantID: SQLiteDatabase]>([:])
    /// Held while a tenant's database is opened, so the first users of a tenant share one opening (and
    /// one writer connection) instead of each opening the file and discarding all but one.
    private let opening = Mutex(())

    /// Opens (creating) the data directory and the system database.
    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "iot.storage")) throws {
        guard (1...16_777_216).contains(configuration.cacheSizeKiB) else {
            throw IoTError(
                .invalidArgument,
                "SQLite cacheSizeKiB is \(configuration.cacheSizeKiB); use 1 to 16777216 (16 GiB) per connection, e.g. 16384"
            )
        }
        self.configuration = configuration
        self.logger = logger
        try makeDirectories(configuration.directory + "/tenants")
        system = try SQLiteDatabase(
            path: configuration.directory + "/system.sqlite", name: "system", cacheSizeKiB: configuration.cacheSizeKiB)
    }

    /// The database of `tenant`, opened (and created) on first use.
    func database(for tenant: TenantID) throws(IoTError) -> SQLiteDatabase {
        guard tenant.isValid else {
            throw IoTError(
                .invalidArgument, "tenant id '\(tenant)' is not valid: use 1–64 characters of A–Z a–z 0–9 - _")
        }
        if let db = tenants.withLock({ $0[tenant] }) { return db }
        return try opening.withLock { _ throws(IoTError) -> SQLiteDatabase in
            if let db = tenants.withLock({ $0[tenant] }) { return db }
            let db = try SQLiteDatabase(
                path: "\(configuration.directory)/tenants/\(tenant.rawValue).sqlite", name: tenant.rawValue,
                cacheSizeKiB: configuration.cacheSizeKiB)
            tenants.withLock { $0[tenant] = db }
            return db
        }
    }

    /// Whether `db` is still the database of `tenant` (it is not after ``deleteDatabase(of:)``: a store that
    /// kept it opens the tenant's file again).
    func isCurrent(_ db: SQLiteDatabase, of tenant: TenantID) -> Bool {
        tenants.withLock { $0[tenant] } === db
    }

    /// Forgets the tenant's database and removes its files (the database, its WAL and shared memory). Stores
    /// that still hold the old database see it is no longer current and open a new, empty file when the
    /// tenant is used again.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/storage`` with errno when a file exists and cannot be removed.
    func deleteDatabase(of tenant: TenantID) throws(IoTError) {
        guard tenant.isValid else { return }
        opening.withLock { _ in _ = tenants.withLock { $0.removeValue(forKey: tenant) } }
        let path = "\(configuration.directory)/tenants/\(tenant.rawValue).sqlite"
        for file in [path, path + "-wal", path + "-shm", path + "-journal"] where unlink(file) != 0 && errno != ENOENT {
            throw IoTError(
                .storage, "cannot remove \(file): \(String(cString: strerror(errno))); remove it by hand",
                nativeCode: errno, domain: .posix)
        }
    }

    /// Closes every open database: the last connection of a file to close checkpoints it and removes its
    /// `-wal` and `-shm` files, so a clean shutdown leaves only the `.sqlite` files. Call it once nothing uses
    /// the stores any more (``IoTPlatform`` does when its services have stopped); later store calls throw
    /// ``IoTCore/IoTError/Code/unavailable``.
    public func close() async {
        let open = [system] + tenants.withLock { Array($0.values) }
        for db in open { await db.close() }
    }

    /// The tenants that have a database file, sorted.
    func tenantsOnDisk() -> [TenantID] {
        guard let dir = opendir(configuration.directory + "/tenants") else { return [] }
        defer { closedir(dir) }
        var result: [TenantID] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name.hasSuffix(".sqlite") {
                result.append(TenantID(String(name.dropLast(".sqlite".count))))
            }
        }
        return result.sorted()
    }
}

/// One SQLite file: a writer connection and a reader connection, each on its own serial queue.
///
/// WAL lets the reader run while the writer commits. Schemas are applied once per component with
/// ``ensureSchema(component:version:_:)``.
final class SQLiteDatabase: Sendable {
    let name: String
    let writer: SQLiteConnection
    let reader: SQLiteConnection
    private let writeQueue: SQLiteExecutor
    private let readQueue: SQLiteExecutor
    private let schemas = Mutex<Set<String>>([])

    init(path: String, name: String, cacheSizeKiB: Int) throws(IoTError) {
        self.name = name
        writer = try SQLiteConnection(path: path)
        try writer.execute("PRAGMA cache_size=-\(cacheSizeKiB)")
        try writer.execute(
            "CREATE TABLE IF NOT EXISTS iot_schema(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        reader = try SQLiteConnection(path: path)
        try reader.execute("PRAGMA cache_size=-\(cacheSizeKiB)")
        writeQueue = SQLiteExecutor(label: "iot.sqlite.\(name).write")
        readQueue = SQLiteExecutor(label: "iot.sqlite.\(name).read")
    }

    /// Closes the reader (ending any read transaction a statement held), then the writer, whose close, the
    /// file's last, checkpoints the WAL into the database and removes it. Each on its own thread after what is
    /// queued there; the caller's thread only awaits (a checkpoint never blocks the cooperative pool).
    func close() async {
        _ = try? await readQueue.run { [reader] in reader.withLock { reader.close() } }
        _ = try? await writeQueue.run { [writer] in writer.withLock { writer.close() } }
    }

    /// Runs `body` on the writer's thread with the writer connection.
    func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await writeQueue.run { [writer] in try writer.withLock { try body(writer) } }
    }

    /// Runs `body` on the writer's thread and blocks the caller (for synchronous callers off the pool).
    func writeSync<T>(_ body: (SQLiteConnection) throws -> T) rethrows -> T {
        try writeQueue.runSync { try writer.withLock { try body(writer) } }
    }

    /// Runs `body` on the reader's thread with the reader connection.
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await readQueue.run { [reader] in try reader.withLock { try body(reader) } }
    }

    /// Applies `sql` (idempotent `CREATE … IF NOT EXISTS` statements) once for `component` at `version`.
    ///
    /// A database whose stored version for the component is newer than `version` is refused: it was
    /// written by a newer release.
    func ensureSchema(component: String, version: Int, _ sql: String) throws(IoTError) {
        if schemas.withLock({ $0.contains(component) }) { return }
        do {
            try writeSync { c in
                let select = try c.statement("SELECT version FROM iot_schema WHERE component = ?")
                select.bind(1, component)
                let stored: Int? = try select.step() ? select.int(0) : nil
                select.reset()
                if let stored, stored > version {
                    throw IoTError(
                        .storage,
                        "database \(name) has \(component) schema version \(stored), newer than this release's \(version); upgrade iotd"
                    )
                }
                if stored == version { return }
                try c.transaction {
                    try c.execute(sql)
                    let upsert = try c.statement(
                        "INSERT INTO iot_schema(component, version) VALUES (?, ?) ON CONFLICT(component) DO UPDATE SET version = excluded.version"
                    )
                    upsert.bind(1, component)
                    upsert.bind(2, version)
                    try upsert.run()
                }
            }
        } catch let error as IoTError {
            throw error
        } catch {
            throw IoTError(.storage, "cannot apply the \(component) schema to \(name): \(error)")
        }
        schemas.withLock { _ = $0.insert(component) }
    }
}

/// Creates `path` and its missing parents (`mkdir -p`), each new one readable by its owner only (0700):
/// the data directory holds token digests and password hashes.
func makeDirectories(_ path: String) throws(IoTError) {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o700) != 0 && errno != EEXIST {
            let code = errno
            throw IoTError(
                .storage, "cannot create directory \(current): \(String(cString: strerror(code))); check permissions",
                nativeCode: code, domain: .posix)
        }
    }
}

extension SQLiteStorage.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case cacheSizeKiB }

    /// Reads `cacheSizeKiB` (`storage:` in iotd.yaml). The directory is not read: whoever owns the data folder
    /// sets it (iotd: its `dataDirectory`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(directory: d.directory, cacheSizeKiB: try c.decode(.cacheSizeKiB, or: d.cacheSizeKiB))
    }

    /// Checks `cacheSizeKiB` (1 KiB to 16 GiB per connection).
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
    public func validate() throws(IoTError) {
        try IoTLimits.checkSetting(cacheSizeKiB, "cacheSizeKiB", in: 1...16_777_216, unit: "KiB")
    }
}
