internal import CIoTSQLite
import Dispatch
import IoTCore
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

// Helpers shared by the SQLite stores (registry, credentials, rule state, statistics, outbox).

/// The schema of a one-row revision counter `counter` (`id` 1, `value`) and of the triggers that raise it after
/// each (table, event) of `raisedBy`, whoever makes the change (the `sqlite3` shell too); each trigger is named
/// `<table>_<event>_revision`. ``SQLiteConnection/revision(_:)`` reads it.
func revisionCounterSchema(_ counter: String, raisedBy: [(table: String, event: String)]) -> String {
    """
    CREATE TABLE IF NOT EXISTS \(counter)(id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT OR IGNORE INTO \(counter)(id, value) VALUES (1, 0);

    """
        + raisedBy.map { table, event in
            """
            CREATE TRIGGER IF NOT EXISTS \(table)_\(event.lowercased())_revision AFTER \(event) ON \(table)
            BEGIN UPDATE \(counter) SET value = value + 1 WHERE id = 1; END;
            """
        }.joined(separator: "\n")
}

extension SQLiteConnection {
    /// The value of a counter made by ``revisionCounterSchema(_:raisedBy:)``; 0 when its row is missing.
    func revision(_ counter: String) throws -> UInt64 {
        let s = try statement("SELECT value FROM \(counter) WHERE id = 1")
        defer { s.reset() }
        return try s.step() ? UInt64(bitPattern: s.int64(0)) : 0
    }
}

/// The databases one store has prepared (opened, schema applied), so that later calls skip the
/// preparation and its hop to a dispatch thread.
final class PreparedDatabases: Sendable {
    private let storage: SQLiteStorage
    private let component: String
    private let version: Int
    private let schema: String
    private let system = Mutex<SQLiteDatabase?>(nil)
    private let tenants = Mutex<[TenantID: SQLiteDatabase]>([:])

    /// Prepares databases of `storage` with `schema`, recorded as `component` at `version`.
    init(storage: SQLiteStorage, component: String, version: Int, schema: String) {
        self.storage = storage
        self.component = component
        self.version = version
        self.schema = schema
    }

    /// The system database with the schema applied.
    func system() async throws -> SQLiteDatabase {
        if let db = system.withLock({ $0 }) { return db }
        let db = storage.system
        try await offPool { [component, version, schema] in
            try db.ensureSchema(component: component, version: version, schema)
        }
        system.withLock { $0 = db }
        return db
    }

    /// The tenant's database with the schema applied, opened (off the cooperative pool) on first use.
    func tenant(_ tenant: TenantID) async throws -> SQLiteDatabase {
        // A database deleted with its tenant is opened again (new and empty) when the tenant is used again.
        if let db = tenants.withLock({ $0[tenant] }), storage.isCurrent(db, of: tenant) { return db }
        let db = try await offPool { [storage, component, version, schema] in
            let db = try storage.database(for: tenant)
            try db.ensureSchema(component: component, version: version, schema)
            return db
        }
        tenants.withLock { $0[tenant] = db }
        return db
    }
}

/// Runs blocking work (opening a file, applying a schema) on a dispatch thread.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// Whether `error` is an SQLite constraint violation (`SQLITE_CONSTRAINT` or one of its extended codes).
func isConstraintViolation(_ error: any Error) -> Bool {
    guard let error = error as? IoTError, let rc = error.nativeCode else { return false }
    return rc & 0xFF == SQLITE_CONSTRAINT
}

/// Runs `body`, turning a constraint violation into ``IoTError/Code/conflict`` with `message`.
func mappingConstraint<T>(_ message: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        if isConstraintViolation(error) {
            throw IoTError(.conflict, message(), nativeCode: (error as? IoTError)?.nativeCode, domain: .sqlite)
        }
        throw error
    }
}

/// JSON for the nested values the stores keep in one column (signals, tags, statistics values).
///
/// Non-finite numbers are written as strings so that every `SignalValue` round-trips.
enum StoreJSON {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "+Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw IoTError(.storage, "cannot encode \(T.self) for storage: \(error)")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "+Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return try decoder.decode(type, from: Data(text.utf8))
        } catch {
            throw IoTError(
                .storage,
                "stored \(T.self) cannot be read (\(error)); the database was changed outside iotd or is damaged")
        }
    }
}

/// The devices of a scope as a JSON array, for `IN (SELECT value FROM json_each(?))`, or `nil` for all.
func scopeDevicesJSON(_ scope: AccessScope) throws -> String? {
    guard let devices = scope.devices else { return nil }
    return try StoreJSON.encode(devices.sorted())
}

extension Statement {
    /// Binds a signal value as a (kind, value) pair at `index` and `index + 1`, or two NULLs.
    func bind(_ index: Int32, kindedSignalValue value: SignalValue?) {
        switch value {
        case nil:
            bindNull(index)
            bindNull(index + 1)
        case .number(let v):
            bind(index, "number")
            bind(index + 1, v)
        case .text(let s):
            bind(index, "text")
            bind(index + 1, s)
        case .bool(let b):
            bind(index, "bool")
            bind(index + 1, Int64(b ? 1 : 0))
        }
    }

    /// Reads a signal value stored by ``bind(_:kindedSignalValue:)`` from columns `i` (kind) and `i + 1`.
    func kindedSignalValue(_ i: Int32) -> SignalValue? {
        switch optionalString(i) {
        case "number": .number(isNull(i + 1) ? .nan : double(i + 1))  // SQLite stores NaN as NULL
        case "text": .text(string(i + 1))
        case "bool": .bool(int64(i + 1) != 0)
        default: nil
        }
    }
}

extension Statement {
    /// Binds bytes as a BLOB; unlike a bare `sqlite3_bind_blob`, an empty array is an empty BLOB, not NULL.
    func bind(_ index: Int32, blob value: [UInt8]) {
        if value.isEmpty {
            sqlite3_bind_zeroblob(handle, index, 0)
        } else {
            bind(index, value)
        }
    }
}
