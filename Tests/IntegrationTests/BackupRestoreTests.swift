import Foundation
import IoTTestSupport
import IoTTesting
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 22, items 1 and 3, from outside as the README tells an operator: `iotd backup` while a device sends
/// over HTTP, `iotd backup verify`, `kill -9` iotd, `iotd restore` into a fresh directory, start there: every
/// point acknowledged before the backup began is stored, each once.
@Suite(.serialized) struct BackupRestoreTests {
    @Test func aBackupTakenWhileDevicesSendRestoresEveryPointAcknowledgedBeforeIt() async throws {
        try await onOwnThread {
            let yaml = """
                tenants:
                  - id: acme
                    products: [{ id: meter, signals: [{ name: seq }] }]
                    devices: [{ uid: m-1, product: meter }]
                """
            let first = IotdProcess("iotd-backup")
            try first.configure(first.preamble() + yaml)
            try first.start()
            defer { first.stop(signal: SIGKILL) }
            let token = try first.issueToken(tenant: "acme", device: "m-1")

            // One device sending one point per request, as fast as it is answered; what was acknowledged.
            let acknowledged = Mutex<[Int]>([])
            let sending = Atomic<Bool>(true)
            let port = first.httpPort
            let sender = Thread {
                var i = 0
                while sending.load(ordering: .relaxed) {
                    let body = #"{"ts": \#(1_700_000_000_000 + i), "seq": \#(i)}"#
                    let answer = try? LoopbackHTTPClient(port: port).request(
                        "POST", "/api/v1/devices/m-1/telemetry",
                        headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                        body: Array(body.utf8))
                    if answer?.status == 200 { acknowledged.withLock { $0.append(i) } }
                    i += 1
                }
            }
            sender.start()
            defer { sending.store(false, ordering: .relaxed) }
            while acknowledged.withLock({ $0.count }) < 300 { usleep(10_000) }

            let set = first.directory.path + "/set"
            let before = acknowledged.withLock { $0 }
            let backup = try runIotd(["backup", "--config", first.configPath, "--to", set])
            #expect(backup.status == 0 && backup.output.last?.contains(" written to ") == true, "\(backup)")
            usleep(200_000)
            sending.store(false, ordering: .relaxed)
            let verify = try runIotd(["backup", "verify", set])
            #expect(verify.status == 0 && verify.output.last?.hasPrefix("backup set OK") == true, "\(verify)")
            first.stop(signal: SIGKILL)

            // Restore into the data directory of a second iotd, then start it there.
            let second = IotdProcess("iotd-restored")
            let restore = try runIotd(["restore", "--from", set, "--to", second.dataDirectory])
            #expect(restore.status == 0, "\(restore)")
            let again = try runIotd(["restore", "--from", set, "--to", second.dataDirectory])
            #expect(
                again.status != 0 && again.output.joined().contains("--force"), "not over a non-empty one: \(again)")
            try second.configure(second.preamble() + yaml)
            try second.start()
            defer { second.stop() }
            let series = try second.api("GET", "/api/v1/tenants/acme/devices/m-1/series/seq?limit=100000")
            let points =
                (try? JSONSerialization.jsonObject(with: Data(series.text.utf8)) as? [String: Any])?["points"]
                as? [[String: Any]] ?? []
            let values = points.compactMap { ($0["value"] as? NSNumber)?.intValue }
            #expect(Set(values).count == values.count, "each point once")
            let missing = Set(before).subtracting(values)
            #expect(missing.isEmpty, "acknowledged before the backup and not restored: \(missing.sorted().prefix(10))")
            #expect(values.count >= before.count, "\(values.count) restored, \(before.count) acknowledged before")
        }
    }
}
