internal import CIoTSQLite
import Dispatch
import Foundation
import IoTCore
import IoTStorage

#if canImport(Glibc)
    import Glibc
#endif

// The query benchmark: 100 devices × 10 signals at 1 Hz (like `sqlite_insert.c`) loaded through
// `SQLitePointStore.write`, then 2,000 pseudo-random 1-hour means (`sqlite_query.c`'s windows) through
// `aggregate(…, bucketMillis: nil)`, side by side with the same mean as plain SQL on the same database.

private let base: Int64 = 1_700_000_000_000
private let deviceCount = 100
private let signalCount = 10

/// Point `i` of the data set (time-major, as `sqlite_insert.c`): its value and time.
private func value(_ i: Int) -> Double { 20.0 + Double(i % 997) / 10.0 }
private func time(_ i: Int) -> Int64 { base + Int64(i / (deviceCount * signalCount)) * 1000 }

func runQueryBenchmark(_ options: BenchOptions) async throws {
    let total = options.points ?? (options.smoke ? 100_000 : 10_000_000)
    let iterations = options.smoke ? 200 : 2_000
    let dir = options.directory + "/query"
    removeTree(options.directory)
    try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
    defer { removeTree(options.directory) }

    let storage = try SQLiteStorage(configuration: .init(directory: dir))
    let store = SQLitePointStore(storage: storage)
    let tenant: TenantID = "bench"
    let devices = (0..<deviceCount).map { "device-\($0)" }
    let signals = (0..<signalCount).map { "signal-\($0)" }

    // Raw insert reference for the load, run first so the SDK's load does not slow it down: the same
    // points in the same order into the same `points` schema, plain C.
    let rawInsertCount = min(total, 1_000_000)
    let rawInsertRate = try await onThread {
        try rawInsert(path: options.directory + "/raw-insert.sqlite", count: rawInsertCount)
    }
    removeTree(options.directory + "/raw-insert.sqlite")
    removeTree(options.directory + "/raw-insert.sqlite-wal")
    removeTree(options.directory + "/raw-insert.sqlite-shm")

    // Load.
    print("query benchmark: loading \(total) points through SQLitePointStore.write (batches of 50,000)…")
    let batchSize = 50_000
    var writeSeconds = 0.0
    var firstSeconds = 0.0  // the SDK's time for the first `rawInsertCount` points, compared like for like
    var i = 0
    var sequence: UInt64 = 0
    while i < total {
        let n = min(batchSize, total - i)
        var points: [Point] = []
        points.reserveCapacity(n)
        for j in i..<(i + n) {
            points.append(
                Point(
                    device: devices[(j / signalCount) % deviceCount], signal: signals[j % signalCount],
                    time: time(j), value: .number(value(j))))
        }
        sequence += 1
        let t = monotonicSeconds()
        try await store.write(PointBatch(tenant: tenant, points: points, journalSequence: sequence))
        let elapsed = monotonicSeconds() - t
        writeSeconds += elapsed
        if i < rawInsertCount { firstSeconds += elapsed * Double(min(n, rawInsertCount - i)) / Double(n) }
        i += n
    }
    let loadRate = Double(total) / writeSeconds
    let dbPath = "\(dir)/tenants/\(tenant.rawValue).sqlite"

    let firstRate = Double(rawInsertCount) / firstSeconds

    // Queries: sqlite_query.c's generator.
    let secondsLoaded = max(1, total / (deviceCount * signalCount))
    let span = max(1, secondsLoaded - 3_600 + 1)
    var seed: UInt32 = 42
    var queries: [(device: Int, signal: Int, start: Int64)] = []
    for _ in 0..<iterations {
        seed = seed &* 1_103_515_245 &+ 12_345
        let dev = Int((seed >> 8) % UInt32(deviceCount))
        let sig = Int((seed >> 16) % UInt32(signalCount))
        queries.append((dev, sig, base + Int64((seed >> 4) % UInt32(span)) * 1000))
    }

    var sdkLatency: [Double] = []
    var sdkMeans: [(Double?, Int)] = []
    for q in queries {
        let t = monotonicSeconds()
        let buckets = try await store.aggregate(
            .tenant(tenant), series: SeriesKey(device: devices[q.device], signal: signals[q.signal]),
            from: q.start, to: q.start + 3_600_000, bucketMillis: nil)
        sdkLatency.append((monotonicSeconds() - t) * 1000)
        sdkMeans.append((buckets.first?.mean, buckets.first?.count ?? 0))
    }
    let queryList = queries
    let (rawLatency, rawMeans) = try await onThread {
        try rawQueries(path: dbPath, queries: queryList, devices: devices, signals: signals)
    }

    var mismatches = 0
    for (k, (sdk, raw)) in zip(sdkMeans, rawMeans).enumerated() {
        let ok: Bool
        if let s = sdk.0, let r = raw.0 {
            ok = sdk.1 == raw.1 && abs(s - r) <= 1e-9 * abs(r)
        } else {
            ok = sdk.0 == nil && raw.0 == nil
        }
        if !ok {
            mismatches += 1
            if mismatches <= 5 {
                print(
                    "MISMATCH query \(k) \(queries[k]): SDK mean \(String(describing: sdk)) raw \(String(describing: raw))"
                )
            }
        }
    }

    let sdk = Percentiles(sdkLatency)
    let raw = Percentiles(rawLatency)
    let rows = rawMeans.first?.1 ?? 0
    print(
        """

        query benchmark: \(total) points (\(deviceCount) devices × \(signalCount) signals × \(secondsLoaded) s at 1 Hz), \
        \(iterations) unaligned 1-hour means (\(rows) points each)
          load through SQLitePointStore.write: \(fmt(loadRate, 0)) points/s (\(fmt(writeSeconds, 1)) s, batches of \(batchSize), \
        rollups included)
          first \(rawInsertCount) points into the empty database: SDK \(fmt(firstRate, 0)) points/s, \
        raw C insert into the same points schema (no rollups, plain INSERT, same batches) \(fmt(rawInsertRate, 0)) points/s \
        → SDK/raw = \(fmt(firstRate / rawInsertRate, 2))

          | query                                         | first ms | p50 ms | p99 ms |
          |-----------------------------------------------|----------|--------|--------|
          | SDK aggregate (raw head/tail + 1m/1h rollups) | \(pad(sdk.first)) | \(pad(sdk.p50, 6)) | \(pad(sdk.p99, 6)) |
          | raw SQL AVG over points (same DB, C API)      | \(pad(raw.first)) | \(pad(raw.p50, 6)) | \(pad(raw.p99, 6)) |
          ratio SDK/raw p50 = \(fmt(sdk.p50 / raw.p50, 3)), p99 = \(fmt(sdk.p99 / raw.p99, 3)); \
        goal p50 ≤ 1 ms: \(sdk.p50 <= 1 ? "MET" : "NOT MET")
          means checked: \(iterations - mismatches)/\(iterations) equal the raw mean (relative error < 1e-9)
        """)
    if mismatches > 0 {
        print("query benchmark FAILED: \(mismatches) SDK means differ from the raw SQL mean")
        exit(1)
    }
}

private struct Percentiles {
    let first, p50, p99: Double
    init(_ samples: [Double]) {
        first = samples.first ?? 0
        let s = samples.sorted()
        p50 = s.isEmpty ? 0 : s[s.count / 2]
        p99 = s.isEmpty ? 0 : s[min(s.count - 1, Int(Double(s.count) * 0.99))]
    }
}

private func fmt(_ x: Double, _ digits: Int) -> String {
    var p = Double(1)
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    return digits == 0 ? String(Int64(r)) : String(r)
}

private func pad(_ x: Double, _ width: Int = 8) -> String {
    let s = fmt(x, 3)
    return String(repeating: " ", count: max(0, width - s.count)) + s
}

private struct RawError: Error, CustomStringConvertible {
    let description: String
}

private func check(_ db: OpaquePointer?, _ rc: Int32, _ what: String) throws {
    if rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW {
        throw RawError(description: "\(what): \(String(cString: sqlite3_errmsg(db))) (\(rc))")
    }
}

/// Inserts `count` points into a fresh database with the store's `points` schema; returns points/s.
private func rawInsert(path: String, count: Int) throws -> Double {
    var db: OpaquePointer?
    try check(db, sqlite3_open(path, &db), "open")
    defer { sqlite3_close(db) }
    try check(
        db,
        sqlite3_exec(
            db,
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384;"
                + "CREATE TABLE points(series INTEGER NOT NULL, ts INTEGER NOT NULL, value, PRIMARY KEY(series, ts)) WITHOUT ROWID",
            nil, nil, nil), "schema")
    var st: OpaquePointer?
    try check(
        db, sqlite3_prepare_v2(db, "INSERT INTO points(series, ts, value) VALUES (?, ?, ?)", -1, &st, nil), "prepare")
    defer { sqlite3_finalize(st) }
    let t0 = monotonicSeconds()
    try check(db, sqlite3_exec(db, "BEGIN", nil, nil, nil), "begin")
    for i in 0..<count {
        sqlite3_bind_int64(st, 1, Int64(i % (deviceCount * signalCount)) + 1)
        sqlite3_bind_int64(st, 2, time(i))
        sqlite3_bind_double(st, 3, value(i))
        try check(db, sqlite3_step(st), "insert")
        sqlite3_reset(st)
        if (i + 1) % 50_000 == 0 {
            try check(db, sqlite3_exec(db, "COMMIT; BEGIN", nil, nil, nil), "commit")
        }
    }
    try check(db, sqlite3_exec(db, "COMMIT", nil, nil, nil), "commit")
    return Double(count) / (monotonicSeconds() - t0)
}

/// The raw reference: `AVG(value)` over the points of the window, on its own read-only connection.
private func rawQueries(
    path: String, queries: [(device: Int, signal: Int, start: Int64)], devices: [String], signals: [String]
) throws -> ([Double], [(Double?, Int)]) {
    var db: OpaquePointer?
    try check(db, sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil), "open")
    defer { sqlite3_close(db) }
    try check(db, sqlite3_exec(db, "PRAGMA cache_size=-16384", nil, nil, nil), "pragma")
    // Series ids first (the C reference binds integer device and signal ids too).
    var ids: [Int64] = []
    var lookup: OpaquePointer?
    try check(
        db, sqlite3_prepare_v2(db, "SELECT id FROM series WHERE device = ? AND signal = ?", -1, &lookup, nil), "prepare"
    )
    for d in devices {
        for s in signals {
            sqlite3_bind_text(lookup, 1, d, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
            sqlite3_bind_text(lookup, 2, s, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
            ids.append(sqlite3_step(lookup) == SQLITE_ROW ? sqlite3_column_int64(lookup, 0) : -1)
            sqlite3_reset(lookup)
        }
    }
    sqlite3_finalize(lookup)
    var st: OpaquePointer?
    try check(
        db,
        sqlite3_prepare_v2(
            db, "SELECT AVG(value), COUNT(*) FROM points WHERE series=? AND ts>=? AND ts<?", -1, &st, nil), "prepare")
    defer { sqlite3_finalize(st) }
    var latency: [Double] = []
    var means: [(Double?, Int)] = []
    for q in queries {
        let t = monotonicSeconds()
        sqlite3_bind_int64(st, 1, ids[q.device * signals.count + q.signal])
        sqlite3_bind_int64(st, 2, q.start)
        sqlite3_bind_int64(st, 3, q.start + 3_600_000)
        try check(db, sqlite3_step(st), "query")
        let mean: Double? = sqlite3_column_type(st, 0) == SQLITE_NULL ? nil : sqlite3_column_double(st, 0)
        let n = Int(sqlite3_column_int64(st, 1))
        sqlite3_reset(st)
        latency.append((monotonicSeconds() - t) * 1000)
        means.append((mean, n))
    }
    return (latency, means)
}
