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
        let dir = iotd.directory
        try iotd.configure(
            iotd.preamble(logLevel: "warning") + """
                tenants:
                  - id: crash
                    products:
                      - { id: counter, signals: [{ name: seq }] }
                    devices:
                      - { uid: dev, product: counter }
                """)
        let (_, acked) = try postNumberedPointsKillingIotd(iotd, tenant: "crash", device: "dev", runs: 5)
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
        #expect(acked.count >= 5 * 300)
        let missing = acked.filter { stored[$0] == nil }.sorted()
        let duplicated = stored.filter { $0.value > 1 }.map(\.key).sorted()
        #expect(missing.isEmpty, "acknowledged but not stored: \(missing.prefix(20))")
        #expect(duplicated.isEmpty, "stored more than once: \(duplicated.prefix(20))")
    }
}
