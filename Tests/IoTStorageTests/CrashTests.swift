import CIoTSQLite
import IoTCore
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

struct CrashTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func workerPath() throws -> String {
    try ChildProcess.builtProduct("iot-crash-worker")
}

func makeTempDirectory(_ prefix: String) -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

/// Runs SQL on a database file and returns the rows as strings.
func query(_ path: String, _ sql: String) throws -> [[String]] {
    var db: OpaquePointer?
    guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else {
        throw CrashTestError("open \(path)")
    }
    defer { sqlite3_close(db) }
    var st: OpaquePointer?
    guard sqlite3_prepare_v2(db, sql, -1, &st, nil) == SQLITE_OK else {
        throw CrashTestError("\(sql): \(String(cString: sqlite3_errmsg(db)))")
    }
    defer { sqlite3_finalize(st) }
    var rows: [[String]] = []
    while sqlite3_step(st) == SQLITE_ROW {
        rows.append(
            (0..<sqlite3_column_count(st)).map { i in sqlite3_column_text(st, i).map { String(cString: $0) } ?? "NULL" }
        )
    }
    return rows
}

@Suite(.serialized) struct CrashTests {
    /// A child ingests sequence-numbered records and is killed with SIGKILL mid-stream five times, then
    /// restarted to replay. Every record whose receipt it reported is stored exactly once, nothing else
    /// is stored, and the database is intact.
    @Test func killNineMidStreamLosesNoAcknowledgedRecord() async throws {
        try await onOwnThread {
            let worker = try workerPath()
            let dir = makeTempDirectory("iot-crash")
            defer { _ = system("rm -rf '\(dir)'") }
            var acknowledged = Set<Int>()
            var attempted = 0..<0
            let perRun = 4_000
            for run in 0..<5 {
                let first = run * perRun
                attempted = 0..<(first + perRun)
                let child = try ChildProcess([worker, dir, "process", "\(first)", "\(perRun)"])
                // Kill after a varying number of receipts, while it is still sending.
                let killAfter = 300 + run * 500
                var seen = 0
                while seen < killAfter, let line = child.readLine() {
                    if line.hasPrefix("R "), let n = Int(line.dropFirst(2)) {
                        acknowledged.insert(n)
                        seen += 1
                    }
                }
                let status = child.stop(signal: SIGKILL)
                #expect(
                    status & 0x7f == SIGKILL, "run \(run): the worker ended before it was killed (status \(status))")
                // Receipts printed before the kill arrived count too.
                while let line = child.readLine() {
                    if line.hasPrefix("R "), let n = Int(line.dropFirst(2)) { acknowledged.insert(n) }
                }
            }
            // Restart: replay and drain, exit cleanly.
            let last = try ChildProcess([worker, dir, "process", "0", "0"])
            while last.readLine() != nil {}
            let status = last.wait()
            #expect(status == 0, "the replaying worker failed (status \(status))")

            let db = dir + "/tenants/crash.sqlite"
            #expect(try query(db, "PRAGMA integrity_check") == [["ok"]])
            let rows = try query(db, "SELECT CAST(value AS INTEGER), COUNT(*) FROM points GROUP BY 1")
            var stored: [Int: Int] = [:]
            for r in rows { stored[Int(r[0])!] = Int(r[1])! }
            let missing = acknowledged.filter { stored[$0] == nil }.sorted()
            let duplicated = stored.filter { $0.value > 1 }.keys.sorted()
            let unexpected = stored.keys.filter { !attempted.contains($0) }.sorted()
            #expect(acknowledged.count >= 5 * 300)
            #expect(missing.isEmpty, "acknowledged but not stored: \(missing.prefix(20))")
            #expect(duplicated.isEmpty, "stored more than once: \(duplicated.prefix(20))")
            #expect(unexpected.isEmpty, "stored but never sent: \(unexpected.prefix(20))")
        }
    }

    /// With the `fsync` durability every append is `fdatasync`ed before its receipt; with `process` the
    /// journal never syncs (SQLite's own checkpoints aside). Counted with `strace -c`.
    @Test(arguments: ["fsync", "process"])
    func durabilityPolicyDecidesTheSyncCalls(policy: String) throws {
        guard access("/usr/bin/strace", X_OK) == 0 else {
            throw CrashTestError("strace is not installed: run ./scripts/test.sh as root, or apt-get install strace")
        }
        let worker = try workerPath()
        let dir = makeTempDirectory("iot-fsync")
        defer { _ = system("rm -rf '\(dir)'") }
        let records = 400
        let report = dir + "/strace.txt"
        let child = try ChildProcess([
            "/usr/bin/strace", "-f", "-c", "-e", "trace=fdatasync,fsync", "-o", report, worker, dir + "/data", policy,
            "0",
            "\(records)",
        ])
        var receipts = 0
        while let line = child.readLine() { if line.hasPrefix("R ") { receipts += 1 } }
        #expect(child.wait() == 0)
        #expect(receipts == records)
        let text = try String(decoding: readAll(report), as: UTF8.self)
        func calls(_ name: String) -> Int {
            for line in text.split(separator: "\n") where line.hasSuffix(" " + name) {
                let cols = line.split(separator: " ", omittingEmptySubsequences: true)
                if cols.count >= 5, let n = Int(cols[3]) { return n }
            }
            return 0
        }
        let syncs = calls("fdatasync") + calls("fsync")
        if policy == "fsync" {
            #expect(syncs >= records, "fsync policy: \(syncs) sync calls for \(records) receipts\n\(text)")
        } else {
            #expect(syncs < records / 10, "process policy: \(syncs) sync calls for \(records) receipts\n\(text)")
        }
    }

    func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw CrashTestError("cannot read \(path)") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[..<n])
        }
        return out
    }
}
