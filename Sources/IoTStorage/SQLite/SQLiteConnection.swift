internal import CIoTSQLite
import IoTCore

#if canImport(Glibc)
    import Glibc
#endif

// The C macro's name, which Swift cannot import.

// swift-format-ignore: AlwaysUseLowerCamelCase
let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection and its prepared-statement cache.
///
/// `@unchecked Sendable` because the `sqlite3*` handle and the statements are only touched while `lock`
/// is held (every public entry point takes it): SQLite itself is built thread-safe (`SQLITE_THREADSAFE=1`
/// on Debian), and we additionally never use one connection from two threads at once. The handle is
/// closed exactly once, by ``close()`` or in `deinit`.
///
/// Calls block (disk I/O): callers run them on a dedicated thread (see ``SQLiteExecutor``), never on
/// the cooperative pool.
final class SQLiteConnection: @unchecked Sendable {
    private let db: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    private let lock = NSLockLike()
    let path: String

    /// Opens (creating) a database in WAL mode with `synchronous=NORMAL` and a busy timeout.
    init(path: String, readOnly: Bool = false) throws(IoTError) {
        var handle: OpaquePointer?
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        if !readOnly && !path.hasPrefix(":") && !path.hasPrefix("file:") && access(path, F_OK) != 0 {
            // Created readable by its owner only (0600); SQLite gives its -wal and -shm files the database
            // file's permissions. Only a file that does not exist yet: closing a descriptor of a file that a
            // connection of this process has open drops every POSIX lock the process holds on it, and without
            // its shared lock another process (the sqlite3 shell) takes itself for the last connection and
            // deletes the WAL and its index under this one.
            let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { Glibc.close(fd) }
        }
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw IoTError(
                .storage,
                "cannot open SQLite database at \(path): \(message); check the directory exists and is writable",
                nativeCode: rc, domain: .sqlite)
        }
        self.db = handle
        self.path = path
        sqlite3_busy_timeout(handle, 5000)
        sqlite3_extended_result_codes(handle, 1)
        if !readOnly {
            try execute("PRAGMA journal_mode=WAL")
            try execute("PRAGMA synchronous=NORMAL")
        }
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        if !closed {
            for (_, s) in statements { sqlite3_finalize(s) }
            sqlite3_close_v2(db)
        }
    }

    /// Whether ``close()`` ran (the handle is gone; every call throws).
    private var closed = false

    /// Closes the connection (caller holds the lock); later calls throw ``IoTCore/IoTError/Code/unavailable``.
    /// The last connection of a WAL database to close checkpoints it and removes its `-wal` and `-shm` files.
    func close() {
        guard !closed else { return }
        closed = true
        for (_, s) in statements { sqlite3_finalize(s) }
        statements.removeAll()
        sqlite3_close_v2(db)
    }

    private func checkOpen() throws(IoTError) {
        if closed {
            throw IoTError(.unavailable, "the SQLite database \(path) is closed: the platform has shut down")
        }
    }

    /// Runs `body` with exclusive use of the connection.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Executes one or more statements without results.
    func execute(_ sql: String) throws(IoTError) {
        try checkOpen()
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(err)
            throw IoTError(
                .storage, "SQLite failed to run \(sql.prefix(80)): \(message)", nativeCode: rc, domain: .sqlite)
        }
    }

    /// A cached prepared statement, reset and with bindings cleared.
    func statement(_ sql: String) throws(IoTError) -> Statement {
        try checkOpen()
        if let s = statements[sql] {
            sqlite3_reset(s)
            sqlite3_clear_bindings(s)
            return Statement(handle: s, connection: self)
        }
        var s: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &s, nil)
        guard rc == SQLITE_OK, let s else { throw error(rc, "prepare \(sql.prefix(120))") }
        statements[sql] = s
        return Statement(handle: s, connection: self)
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back when it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs `body` inside a read transaction (one consistent snapshot).
    func readTransaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN DEFERRED")
        defer { try? execute("COMMIT") }
        return try body()
    }

    /// Copies the database, page for page, into a new file at `target` with SQLite's online backup API: one
    /// read transaction, so a consistent snapshot that a writer on another connection does not disturb (WAL).
    /// Page `n` of the copy is page `n` of the database, which is what lets a later backup send only the pages
    /// that changed. Caller holds the lock.
    func backup(to target: String) throws(IoTError) {
        try checkOpen()
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(target, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let destination = handle else {
            if let handle { sqlite3_close_v2(handle) }
            throw IoTError(.storage, "cannot create \(target) to back up \(path) into", nativeCode: rc, domain: .sqlite)
        }
        defer { sqlite3_close_v2(destination) }
        guard let backup = sqlite3_backup_init(destination, "main", db, "main") else {
            let message = String(cString: sqlite3_errmsg(destination))
            throw IoTError(
                .storage, "cannot back up \(path): \(message)", nativeCode: sqlite3_errcode(destination),
                domain: .sqlite)
        }
        var step = sqlite3_backup_step(backup, -1)
        while step == SQLITE_BUSY || step == SQLITE_LOCKED {
            usleep(10_000)
            step = sqlite3_backup_step(backup, -1)
        }
        let finish = sqlite3_backup_finish(backup)
        guard step == SQLITE_DONE, finish == SQLITE_OK else {
            throw IoTError(
                .storage, "backing up \(path) into \(target) failed: \(String(cString: sqlite3_errstr(step)))",
                nativeCode: step == SQLITE_DONE ? finish : step, domain: .sqlite)
        }
    }

    /// Rows changed by the last statement.
    var changes: Int { Int(sqlite3_changes(db)) }
    /// The rowid of the last row inserted on this connection.
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

    /// Builds an ``IoTError`` carrying SQLite's message and result code.
    func error(_ rc: Int32, _ doing: String) -> IoTError {
        IoTError(
            .storage, "SQLite failed to \(doing): \(String(cString: sqlite3_errmsg(db))) (\(path))", nativeCode: rc,
            domain: .sqlite)
    }
}

/// A prepared statement borrowed from a ``SQLiteConnection``; valid while the connection's lock is held.
struct Statement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection

    // MARK: Binding (1-based indexes)
    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    func bind(_ index: Int32, _ value: Int) { sqlite3_bind_int64(handle, index, Int64(value)) }
    func bind(_ index: Int32, _ value: Double) { sqlite3_bind_double(handle, index, value) }
    func bind(_ index: Int32, _ value: String) { sqlite3_bind_text(handle, index, value, -1, SQLITE_TRANSIENT) }
    func bind(_ index: Int32, _ value: [UInt8]) {
        _ = value.withUnsafeBytes {
            sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT)
        }
    }
    func bindNull(_ index: Int32) { sqlite3_bind_null(handle, index) }
    func bind(_ index: Int32, _ value: String?) { if let value { bind(index, value) } else { bindNull(index) } }
    func bind(_ index: Int32, _ value: Int64?) { if let value { bind(index, value) } else { bindNull(index) } }
    func bind(_ index: Int32, _ value: Double?) { if let value { bind(index, value) } else { bindNull(index) } }

    /// Steps once: `true` for a row, `false` when done.
    @discardableResult
    func step() throws(IoTError) -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw connection.error(rc, "step \(String(cString: sqlite3_sql(handle)).prefix(120))")
    }

    /// Steps to completion, ignoring rows.
    func run() throws(IoTError) { while try step() {} }

    /// Resets for the next use (keeps bindings).
    func reset() { sqlite3_reset(handle) }

    // MARK: Columns (0-based indexes)
    func isNull(_ i: Int32) -> Bool { sqlite3_column_type(handle, i) == SQLITE_NULL }
    func int64(_ i: Int32) -> Int64 { sqlite3_column_int64(handle, i) }
    func int(_ i: Int32) -> Int { Int(sqlite3_column_int64(handle, i)) }
    func double(_ i: Int32) -> Double { sqlite3_column_double(handle, i) }
    func string(_ i: Int32) -> String {
        guard let p = sqlite3_column_text(handle, i) else { return "" }
        return String(cString: p)
    }
    func optionalString(_ i: Int32) -> String? { isNull(i) ? nil : string(i) }
    func optionalInt64(_ i: Int32) -> Int64? { isNull(i) ? nil : int64(i) }
    func optionalDouble(_ i: Int32) -> Double? { isNull(i) ? nil : double(i) }
    func blob(_ i: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(handle, i))
        guard n > 0, let p = sqlite3_column_blob(handle, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
    /// The column's SQLite storage class.
    func columnType(_ i: Int32) -> Int32 { sqlite3_column_type(handle, i) }
}

/// A minimal pthread mutex (Foundation-free).
///
/// `@unchecked Sendable`: a pthread mutex exists to be shared between threads; the pointer is allocated
/// once in `init`, never reassigned, and destroyed once in `deinit`.
final class NSLockLike: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        m = .allocate(capacity: 1)
        pthread_mutex_init(m, nil)
    }
    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
    func lock() { pthread_mutex_lock(m) }
    func unlock() { pthread_mutex_unlock(m) }
}
