import Foundation
import IoTTestSupport
import IoTTesting
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 22, item 4, the disaster-recovery drill, from outside as the README tells an operator: iotd takes HTTP
/// ingest at about 2,000 points/s with continuous backup (`backup: continuous: {everySeconds: 1}`) into a second
/// directory; it is killed with SIGKILL and its data directory deleted; `iotd restore` builds a fresh one from the
/// repository and iotd starts there: every point acknowledged before the last shipment began is stored, each once.
@Suite(.serialized) struct DisasterRecoveryTests {
    static func millisNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec) / 1_000_000
    }

    @Test func killedWithItsDataDeletedItIsRestoredFromTheShippedBackupWithEveryAcknowledgedPointOnce() async throws {
        try await onOwnThread {
            let signals = (0..<10).map { "{ name: s\($0) }" }.joined(separator: ", ")
            let devices = (1...4).map { "{ uid: m-\($0), product: meter }" }.joined(separator: ", ")
            let first = IotdProcess("iotd-dr")
            let repository = first.directory.path + "/backups"
            let yaml = """
                backup:
                  to: \(repository)
                  continuous: { everySeconds: 1 }
                tenants:
                  - id: acme
                    products: [{ id: meter, signals: [\(signals)] }]
                    devices: [\(devices)]
                """
            try first.configure(first.preamble() + yaml)
            try first.start()
            defer { first.stop(signal: SIGKILL) }
            let tokens = try (1...4).map { try first.issueToken(tenant: "acme", device: "m-\($0)") }

            // Four devices, 50 messages of 10 points each per second each: 2,000 points/s; each message
            // acknowledged is kept with the time its answer came.
            let acknowledged = Mutex<[(device: Int, seq: Int, at: Int64)]>([])
            let sending = Atomic<Bool>(true)
            let port = first.httpPort
            var senders: [Thread] = []
            for device in 1...4 {
                let token = tokens[device - 1]
                let sender = Thread {
                    let client = try? LoopbackHTTPClient(port: port)
                    var seq = 0
                    let start = Self.millisNow()
                    while sending.load(ordering: .relaxed) {
                        let due = start + Int64(seq) * 20
                        let wait = due - Self.millisNow()
                        if wait > 0 { usleep(useconds_t(wait * 1_000)) }
                        let values = (0..<10).map { #""s\#($0)": \#(seq)"# }.joined(separator: ", ")
                        let body = #"{"ts": \#(1_700_000_000_000 + seq), \#(values)}"#
                        let answer = try? client?.request(
                            "POST", "/api/v1/devices/m-\(device)/telemetry",
                            headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                            body: Array(body.utf8))
                        if answer?.status == 200 {
                            let at = Self.millisNow()
                            acknowledged.withLock { $0.append((device, seq, at)) }
                        }
                        seq += 1
                    }
                }
                sender.start()
                senders.append(sender)
            }
            defer { sending.store(false, ordering: .relaxed) }
            usleep(8_000_000)
            first.stop(signal: SIGKILL)
            let killedAt = Self.millisNow()
            sending.store(false, ordering: .relaxed)
            usleep(200_000)
            let sent = acknowledged.withLock { $0 }
            #expect(sent.count >= 8 * 4 * 40, "\(sent.count) messages acknowledged in 8 s (about 1,600 expected)")

            // The data directory is lost.
            try FileManager.default.removeItem(atPath: first.dataDirectory)
            let list = try runIotd(["backup", "list", repository])
            #expect(list.status == 0, "\(list)")
            let index = try String(contentsOfFile: repository + "/shipped/index", encoding: .utf8)
            let lastShipment = try #require(index.split(separator: "\n").last?.split(separator: " "))
            let shippedAt = try #require(Int64(lastShipment[2]))
            #expect(killedAt - shippedAt <= 2_500, "the recovery point: \(killedAt - shippedAt) ms of data")

            let second = IotdProcess("iotd-dr-restored")
            let restore = try runIotd(["restore", "--from", repository, "--to", second.dataDirectory])
            #expect(restore.status == 0 && restore.output.last?.hasPrefix("restored ") == true, "\(restore)")
            try second.configure(second.preamble() + yaml.replacingOccurrences(of: repository, with: repository + "2"))
            try second.start()
            defer { second.stop() }
            for device in 1...4 {
                let mustHave = Set(sent.filter { $0.device == device && $0.at < shippedAt }.map(\.seq))
                let acked = Set(sent.filter { $0.device == device }.map(\.seq))
                for signal in ["s0", "s9"] {
                    // The journal's records are replayed when iotd starts; they are stored moments later.
                    var values: [Int] = []
                    var series = (status: 0, text: "")
                    try? eventually("m-\(device)/\(signal) restored", seconds: 20) {
                        series = try second.api(
                            "GET", "/api/v1/tenants/acme/devices/m-\(device)/series/\(signal)?limit=100000")
                        let points =
                            (try? JSONSerialization.jsonObject(with: Data(series.text.utf8)) as? [String: Any])?[
                                "points"] as? [[String: Any]] ?? []
                        values = points.compactMap { ($0["value"] as? NSNumber)?.intValue }
                        return mustHave.isSubset(of: values)
                    }
                    #expect(Set(values).count == values.count, "m-\(device)/\(signal): each point once")
                    let missing = mustHave.subtracting(values).sorted()
                    #expect(
                        missing.count == 0,
                        "m-\(device)/\(signal): \(missing.count) of \(mustHave.count) acknowledged before the last shipment not restored (\(missing.prefix(10))); \(values.count) stored; \(series.status) \(series.text.prefix(200)); restore: \(restore.output)"
                    )
                    #expect(!mustHave.isEmpty && values.count >= mustHave.count)
                    let strange = Set(values).subtracting(acked).filter { $0 < (acked.max() ?? 0) - 50 }
                    #expect(strange.isEmpty, "m-\(device)/\(signal): stored, never sent or long unanswered: \(strange)")
                }
            }
        }
    }
}
