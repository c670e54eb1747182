import CIoTSQLite
import Foundation
import IoTTestSupport
import IoTTesting
import Synchronization
import Testing

@Suite(.serialized) struct HTTPCrashTests {
    /// `iotd serve` as a child; four connections post sequence-numbered points; the daemon is killed with
    /// SIGKILL mid-stream five times and restarted. Every point that got a 2xx is stored exactly once.
    @Test func killNineWhilePostingLosesNoAcknowledgedPoint() throws {
        let iotd = IotdProcess("iotd-http-crash")
        let (dir, httpPort) = (iotd.directory, iotd.httpPort)
        try iotd.configure(
            iotd.preamble(logLevel: "warning") + """
                tenants:
                  - id: crash
                    products:
                      - { id: counter, signals: [{ name: seq }] }
                    devices:
                      - { uid: dev, product: counter }
                """)
        var token = ""
        let acknowledged = Mutex(Set<Int>())
        let next = Mutex(0)
        for run in 0..<5 {
            let server = try iotd.start()
            if token.isEmpty { token = try iotd.issueToken(tenant: "crash", device: "dev") }
            let before = acknowledged.withLock { $0.count }
            let killAfter = before + 300 + run * 200
            let group = DispatchGroup()
            let auth = ["Authorization": "Bearer \(token)"]
            for _ in 0..<4 {
                DispatchQueue.global().async(group: group) {
                    guard let client = try? LoopbackHTTPClient(port: httpPort) else { return }
                    while true {
                        let seq = next.withLock { n in
                            defer { n += 1 }
                            return n
                        }
                        let body = #"{"ts": \#(1_700_000_000_000 + Int64(seq)), "seq": \#(seq)}"#
                        guard
                            let r = try? client.request(
                                "POST", "/api/v1/devices/dev/telemetry", headers: auth, body: Array(body.utf8))
                        else {
                            return  // the daemon is gone
                        }
                        if r.status == 200 {
                            acknowledged.withLock { _ = $0.insert(seq) }
                        } else if r.status != 503 {
                            Issue.record("unexpected answer \(r.status): \(r.text)")
                            return
                        }
                    }
                }
            }
            let deadline = Date().addingTimeInterval(60)
            while acknowledged.withLock({ $0.count }) < killAfter && Date() < deadline { usleep(1_000) }
            #expect(
                acknowledged.withLock { $0.count } >= killAfter,
                "run \(run): the daemon acknowledged too little in 60 s")
            let status = server.stop(signal: SIGKILL)
            #expect(status & 0x7f == SIGKILL)
            group.wait()
        }
        // Restart once more: replay, then a graceful stop drains everything into the store.
        let server = try iotd.start()
        let status = server.stop(signal: SIGTERM)
        #expect(status == 0, "graceful stop: status \(status)")

        var db: OpaquePointer?
        #expect(sqlite3_open_v2(dir.path + "/data/tenants/crash.sqlite", &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK)
        defer { sqlite3_close(db) }
        var st: OpaquePointer?
        sqlite3_prepare_v2(db, "SELECT CAST(value AS INTEGER), COUNT(*) FROM points GROUP BY 1", -1, &st, nil)
        var stored: [Int: Int] = [:]
        while sqlite3_step(st) == SQLITE_ROW {
            stored[Int(sqlite3_column_int64(st, 0))] = Int(sqlite3_column_int64(st, 1))
        }
        sqlite3_finalize(st)
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count >= 5 * 300)
        let missing = acked.filter { stored[$0] == nil }.sorted()
        let duplicated = stored.filter { $0.value > 1 }.map(\.key).sorted()
        #expect(missing.isEmpty, "acknowledged but not stored: \(missing.prefix(20))")
        #expect(duplicated.isEmpty, "stored more than once: \(duplicated.prefix(20))")
    }
}
