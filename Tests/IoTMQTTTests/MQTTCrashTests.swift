import CIoTSQLite
import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Synchronization
import Testing

/// `iotd serve` as a real process with an MQTT client (fixed client id, clean session off, QoS 1); a
/// publisher sends sequence-numbered QoS 1 messages at a few thousand per second while the daemon is killed
/// with SIGKILL five times and restarted.
@Suite(.serialized) struct MQTTCrashTests {
    func iotdConfiguration(_ iotd: IotdProcess, brokerPort: Int) -> String {
        iotd.preamble(logLevel: "warning") + """
            outbound: { allow: ["127.0.0.1"] }
            tenants:
              - id: crash
                products:
                  - { id: counter, signals: [{ name: seq }] }
                devices:
                  - { uid: dev, product: counter }
            mqtt:
              threads: 1
              clients:
                - id: crash-ingest
                  tenant: crash
                  broker: { host: 127.0.0.1, port: \(brokerPort), clientID: iotd-crash, reconnectDelayMillis: 50, maxReconnectDelayMillis: 500 }
                  subscriptions:
                    - { template: "devices/{uid}/telemetry", qos: 1 }
            """
    }

    /// The client's report from the management API.
    func clientReport(apiPort: Int) throws -> [String: Any]? {
        let r = try LoopbackHTTPClient(port: apiPort).request(
            "GET", "/api/v1/mqtt/clients/crash-ingest", headers: ["Authorization": "Bearer \(IotdProcess.adminKey)"])
        guard r.status == 200 else { return nil }
        return try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
    }

    func waitUntilSubscribed(apiPort: Int) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let report = try? clientReport(apiPort: apiPort), let status = report["status"] as? [String: Any],
                status["state"] as? String == "connected",
                let subs = status["subscriptions"] as? [[String: Any]], subs.first?["grantedQoS"] as? Int == 1
            {
                return
            }
            usleep(20_000)
        }
        throw TestFailure("the MQTT client of iotd did not connect and subscribe within 20 s")
    }

    /// seq → rows stored.
    func storedRows(_ path: String) -> [Int: Int] {
        var db: OpaquePointer?
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { return [:] }
        defer { sqlite3_close(db) }
        sqlite3_busy_timeout(db, 2_000)
        var st: OpaquePointer?
        sqlite3_prepare_v2(db, "SELECT CAST(value AS INTEGER), COUNT(*) FROM points GROUP BY 1", -1, &st, nil)
        var stored: [Int: Int] = [:]
        while sqlite3_step(st) == SQLITE_ROW {
            stored[Int(sqlite3_column_int64(st, 0))] = Int(sqlite3_column_int64(st, 1))
        }
        sqlite3_finalize(st)
        return stored
    }

    @Test func killNineWhileReceivingLosesNoAcknowledgedMessage() async throws {
        let broker = try MosquittoBroker(extra: "max_queued_messages 0")
        defer { broker.stop() }
        let iotd = IotdProcess("iotd-mqtt-crash")
        let apiPort = iotd.apiPort
        try iotd.configure(iotdConfiguration(iotd, brokerPort: broker.port))

        // The first start creates the broker session (clean session off) by subscribing.
        try iotd.start()
        try waitUntilSubscribed(apiPort: apiPort)

        // The publisher: 4 concurrent QoS 1 streams, about 3 000 messages/s in all, each PUBACK recorded.
        let publisher = try MQTTClient(
            configuration: clientConfiguration(port: broker.port, id: "crash-pub", clean: true))
        publisher.start()
        try await publisher.waitUntilReady()
        final class Stream: Sendable {
            let acknowledged = Mutex(Set<Int>())
            let next = Atomic<Int>(0)
            let running = Atomic<Bool>(true)
            let started = Date()
        }
        let stream = Stream()
        let rate = 3_000.0
        let streams = (0..<4).map { _ in
            Task { [stream, publisher] in
                while stream.running.load(ordering: .relaxed) {
                    let seq = stream.next.add(1, ordering: .relaxed).oldValue
                    let due = stream.started.addingTimeInterval(Double(seq) / rate)
                    let wait = due.timeIntervalSinceNow
                    if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                    let body = #"{"ts": \#(1_700_000_000_000 + Int64(seq)), "seq": \#(seq)}"#
                    do {
                        try await publisher.publish(topic: "devices/dev/telemetry", payload: Array(body.utf8), qos: 1)
                        stream.acknowledged.withLock { _ = $0.insert(seq) }
                    } catch {
                        Issue.record("publish \(seq) failed: \(error)")
                    }
                }
            }
        }

        for run in 0..<5 {
            try await Task.sleep(for: .milliseconds(1_200 + 200 * run))
            let status = iotd.stop(signal: SIGKILL)
            #expect(status & 0x7f == SIGKILL, "run \(run): iotd was killed")
            try iotd.start()
        }
        try await Task.sleep(for: .milliseconds(1_000))
        stream.running.store(false, ordering: .relaxed)
        for s in streams { await s.value }
        await publisher.stop()
        let acked = stream.acknowledged.withLock { $0 }

        // Let the restarted daemon drain what the broker kept, then stop it gracefully.
        let db = iotd.dataDirectory + "/tenants/crash.sqlite"
        let deadline = Date().addingTimeInterval(60)
        var last = -1
        var stableSince = Date()
        while Date() < deadline {
            let n = storedRows(db).count
            if n >= acked.count { break }
            if n != last {
                last = n
                stableSince = Date()
            } else if Date().timeIntervalSince(stableSince) > 5 {
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let report = try clientReport(apiPort: apiPort)
        let status = iotd.stop(signal: SIGTERM)
        #expect(status == 0, "graceful stop: status \(status)")

        let stored = storedRows(db)
        let missing = acked.filter { stored[$0] == nil }.sorted()
        let duplicated = stored.filter { $0.value > 1 }.map(\.key).sorted()
        print(
            "MQTT crash test: \(acked.count) messages PUBACKed by the broker over 5 kills, \(stored.count) stored, lost \(missing.count) (ack-before-callback window), duplicate rows \(duplicated.count); last client report: \(report.map { "\($0["status"] ?? "")" } ?? "none")"
        )
        #expect(acked.count >= 10_000, "the publisher sent too little: \(acked.count)")
        #expect(missing.count <= 5, "acknowledged but not stored (more than one per kill): \(missing.prefix(20))")
        #expect(duplicated.isEmpty, "stored more than once: \(duplicated.prefix(20))")
    }
}
