import CIoTSQLite
import Foundation
import IoTTestSupport
import IoTTesting
import Testing

@Suite(.serialized) struct DemoRulesTests {
    /// End to end through the daemon: points posted over HTTP raise the demo's 'too-warm' alarm, which is
    /// stored, and the 'temperature-10s' statistics job stores a result computed by its Lua calculation.
    @Test func httpIngestRaisesAStoredAlarmAndStatisticsAreStored() async throws {
        try await onOwnThread {
            let dir = TemporaryDirectory("iotd-demo-rules")
            let demo = try ChildProcess([
                try ChildProcess.builtProduct("iotd"), "demo", "--dir", dir.path, "--http-port", "0", "--api-port", "0",
                "--devices", "6", "--interval-ms", "500", "--quiet",
            ])
            var httpPort: Int?
            var token: String?
            var apiPort: Int?
            while token == nil || apiPort == nil, let line = demo.readLine() {
                if line.contains("management API") {
                    apiPort = line.split(separator: " ").first { $0.hasPrefix("http://") }
                        .flatMap { $0.split(separator: ":").last }.flatMap { Int($0) }
                }
                if line.contains("curl -s -X POST"),
                    let url = line.split(separator: " ").first(where: { $0.hasPrefix("http://") })
                {
                    // http://127.0.0.1:PORT/api/v1/TOKEN/telemetry
                    let parts = url.split(separator: "/")
                    httpPort = parts[1].split(separator: ":").last.flatMap { Int($0) }
                    token = String(parts[4])
                }
            }
            let port = try #require(httpPort)
            try waitFor(port: try #require(apiPort), path: "/readyz")
            let client = try LoopbackHTTPClient(port: port)
            for _ in 0..<10 {
                let r = try client.request(
                    "POST", "/api/v1/\(try #require(token))/telemetry", body: Array(#"{"temperature": 30}"#.utf8))
                #expect(r.status == 200, "\(r.status) \(r.text)")
            }
            let db = dir.path + "/tenants/demo.sqlite"
            let deadline = Date().addingTimeInterval(25)
            var alarms: [[String]] = []
            var results: [[String]] = []
            while Date() < deadline && (alarms.isEmpty || results.isEmpty) {
                usleep(250_000)
                alarms = (try? rows(db, "SELECT rule_id, originator FROM alarms WHERE rule_id = 'too-warm'")) ?? []
                results =
                    (try? rows(db, "SELECT job_id, \"values\" FROM statistics WHERE job_id = 'temperature-10s'")) ?? []
            }
            #expect(alarms.contains { $0 == ["too-warm", "thermometer-01"] }, "alarms: \(alarms)")
            #expect(results.contains { $0[1].contains("fahrenheit") }, "statistics: \(results)")
            let status = demo.stop(signal: SIGTERM)
            #expect(status == 0, "status \(status)")
        }
    }

    func rows(_ path: String, _ sql: String) throws -> [[String]] {
        var db: OpaquePointer?
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else {
            sqlite3_close(db)
            throw IntegrationFailure(description: "cannot open \(path)")
        }
        defer { sqlite3_close(db) }
        sqlite3_busy_timeout(db, 2_000)
        var st: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &st, nil) == SQLITE_OK else {
            throw IntegrationFailure(description: String(cString: sqlite3_errmsg(db)))
        }
        defer { sqlite3_finalize(st) }
        var out: [[String]] = []
        while sqlite3_step(st) == SQLITE_ROW {
            out.append(
                (0..<sqlite3_column_count(st)).map { sqlite3_column_text(st, $0).map { String(cString: $0) } ?? "" })
        }
        return out
    }
}
