import CIoTSQLite
import Foundation
import IoTCore
import IoTStorage
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Journal + store points/s with durable receipts, side by side with raw SQLite inserts measured in
/// the same run:
/// - "raw, same schema": the C API inserting the same points into the same clustered
///   `points(series, ts, …) WITHOUT ROWID` table, one prepared statement, 10k rows per transaction,
///   WAL + synchronous=NORMAL — the physical limit of the schema without journal, rollups or pipeline;
/// - "raw, bench_sqlite": `../shared/bench`'s `sqlite_insert` (rowid table + (device, signal, ts) index,
///   10k rows per transaction), the project's reference figure.
/// Data as in `sqlite_insert.c`: 100 devices × 10 signals, one sample per second, time-major; one message
/// per device and second (10 values).
func runIngestBenchmark(_ options: BenchOptions) async throws {
    let total = options.points ?? (options.smoke ? 20_000 : 1_000_000)
    let devices = 100
    let signals = 10
    let messages = total / signals
    print(
        "== ingest: \(grouped(Double(messages * signals))) points in \(grouped(Double(messages))) messages of \(signals) values"
    )

    let base = options.directory + "/ingest"
    removeTree(base)
    var logger = Logger(label: "bench")
    logger.logLevel = .error

    // SDK: ingestor + file journal (process durability) + SQLite point store.
    let sdkRate: Double
    do {
        let storage = try SQLiteStorage(configuration: .init(directory: base + "/sdk"), logger: logger)
        let journal = try FileJournal(configuration: .init(directory: base + "/sdk/journal"), logger: logger)
        let registry = SQLiteRegistryStore(storage: storage)
        let store = SQLitePointStore(storage: storage)
        let ingestor = Ingestor(journal: journal, pointStore: store, registry: registry, logger: logger)
        do {
            let (rate, seconds, receipts) = try await pipelineRate(
                ingestor: ingestor, registry: registry, store: store, messages: messages, devices: devices,
                signals: signals)
            sdkRate = rate
            print(
                "sdk   journal(process)+ingestor+SQLitePointStore: \(grouped(sdkRate)) points/s  (receipts for all after \(String(format: "%.2f", receipts)) s, committed after \(String(format: "%.2f", seconds)) s)"
            )
        } catch {
            print("FAILED: \(error)")
            exit(1)
        }
    }

    // Raw reference in the same schema.
    let rawRate = try rawInsertSameSchema(
        path: base + "/raw.sqlite", total: messages * signals, devices: devices, signals: signals, sortBySeries: false)
    print("raw   C API, same clustered schema, 10k rows/txn:     \(grouped(rawRate)) points/s")
    let rawSortedRate = try rawInsertSameSchema(
        path: base + "/raw-sorted.sqlite", total: messages * signals, devices: devices, signals: signals,
        sortBySeries: true)
    print("raw   same, each 10k-row txn sorted by series:        \(grouped(rawSortedRate)) points/s")

    // Shared reference: bench_sqlite's sqlite_insert with index.
    var sharedRate: Double?
    if let dir = sharedBenchDirectory() {
        let bin = options.directory + "/ref-bin"
        _ = shell("make -s -C '\(dir)' BIN='\(bin)' '\(bin)/sqlite_insert' 2>&1")
        if let out = shell("\(bin)/sqlite_insert '\(base)/shared.sqlite' \(messages * signals) 10000 index"),
            let rate = out.split(separator: " ").first(where: { $0.hasPrefix("rate=") }).flatMap({
                Double($0.dropFirst(5).trimmingCharacters())
            })
        {
            sharedRate = rate
            print("raw   shared/bench sqlite_insert (rowid + index):   \(grouped(rate)) points/s")
        }
    }
    print(String(format: "ratio sdk / raw same schema: %.2f×   (goal ≥ 0.70×)", sdkRate / rawRate))
    print(
        String(
            format: "ratio sdk / raw same schema sorted by series (the schema's physical limit): %.2f×",
            sdkRate / rawSortedRate))
    if let sharedRate { print(String(format: "ratio sdk / shared sqlite_insert index: %.2f×", sdkRate / sharedRate)) }
    removeTree(base)
}

extension Substring {
    fileprivate func trimmingCharacters() -> Substring {
        var s = self
        while let l = s.last, l == "\n" || l == " " { s.removeLast() }
        return s
    }
}

/// Inserts `total` points into a fresh database with the SDK's clustered point schema, via the C API.
/// With `sortBySeries`, each transaction's rows are inserted in (series, time) order, as the SDK does.
private func rawInsertSameSchema(path: String, total: Int, devices: Int, signals: Int, sortBySeries: Bool) throws
    -> Double
{
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw BenchError("cannot open \(path)") }
    defer { sqlite3_close(db) }
    func exec(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw BenchError("\(sql): \(String(cString: sqlite3_errmsg(db)))")
        }
    }
    try exec("PRAGMA journal_mode=WAL")
    try exec("PRAGMA synchronous=NORMAL")
    try exec(rawPointsSchema)
    var st: OpaquePointer?
    guard sqlite3_prepare_v2(db, rawInsertSQL, -1, &st, nil) == SQLITE_OK else {
        throw BenchError("prepare: \(String(cString: sqlite3_errmsg(db)))")
    }
    defer { sqlite3_finalize(st) }
    struct Row {
        var series: Int64
        var time: Int64
        var value: Double
    }
    let t0 = monotonicSeconds()
    var rows: [Row] = []
    rows.reserveCapacity(10_000)
    func flush() throws {
        if sortBySeries { rows.sort { ($0.series, $0.time) < ($1.series, $1.time) } }
        try exec("BEGIN")
        for r in rows {
            sqlite3_bind_int64(st, 1, r.series)
            sqlite3_bind_int64(st, 2, r.time)
            sqlite3_bind_double(st, 3, r.value)
            guard sqlite3_step(st) == SQLITE_DONE else {
                throw BenchError("step: \(String(cString: sqlite3_errmsg(db)))")
            }
            sqlite3_reset(st)
        }
        try exec("COMMIT")
        rows.removeAll(keepingCapacity: true)
    }
    for i in 0..<total {
        rows.append(
            Row(
                series: Int64((i / signals) % devices * signals + i % signals + 1),
                time: 1_700_000_000_000 + Int64(i / (devices * signals)) * 1000,
                value: 20.0 + Double(i % 997) / 10.0))
        if rows.count == 10_000 { try flush() }
    }
    try flush()
    return Double(total) / (monotonicSeconds() - t0)
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The SDK's point table (`SQLitePointStore.schema`), without the rollup tables the SDK also maintains.
private let rawPointsSchema = """
    CREATE TABLE IF NOT EXISTS points(
      series INTEGER NOT NULL, ts INTEGER NOT NULL, value, PRIMARY KEY(series, ts)) WITHOUT ROWID;
    """
private let rawInsertSQL = "INSERT INTO points(series, ts, value) VALUES (?, ?, ?)"
