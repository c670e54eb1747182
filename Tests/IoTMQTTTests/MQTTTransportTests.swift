import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Logging
import Synchronization
import Testing

@Suite(.serialized) struct MQTTTransportTests {
    func transport(
        _ harness: IngestHarness, port: Int, id: String, qos: Int = 1, share: String? = nil,
        maxPayload: Int = 256 * 1024
    ) throws -> MQTTTransport {
        try MQTTTransport(
            configuration: .init(
                client: clientConfiguration(port: port, id: id), tenant: IngestHarness.tenant,
                subscriptions: [try .init(template: "devices/{uid}/telemetry", qos: qos, shareGroup: share)],
                maxPayloadBytes: maxPayload),
            ingestor: harness.ingestor, logger: Logger(label: "test"))
    }

    @Test(arguments: [0, 1, 2]) func subscribesParsesAndStores(qos: Int) async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let harness = try await IngestHarness(systemClock: true, start: false)
        let mqtt = try transport(harness, port: broker.port, id: "ingest-qos\(qos)", qos: qos)
        try await harness.start([mqtt])
        try await mqtt.client.waitUntilReady()
        #expect(mqtt.client.status.subscriptions.first?.grantedQoS == qos)

        try mosquittoPub(
            port: broker.port, topic: "devices/d-1/telemetry", message: #"{"ts": 1700000000000, "temp": 21.5}"#,
            qos: qos)
        try mosquittoPub(
            port: broker.port, topic: "devices/d-2/telemetry",
            message: #"{"ts": 1700000000001, "temp": 22.5, "hum": 40}"#, qos: qos)
        let d1 = try await harness.waitForPoints("d-1", "temp", count: 1)
        let d2 = try await harness.waitForPoints("d-2", "hum", count: 1)
        #expect(d1.map(\.value) == [.number(21.5)])
        #expect(d1.first?.time == 1_700_000_000_000)
        #expect(d2.map(\.value) == [.number(40)])
        let status = mqtt.client.status
        #expect(status.state == .connected)
        #expect(status.messagesIn == 2)
        // The counters are updated on the loop thread right after the journal receipt; the store may be quicker.
        try await eventually("2 stored") { mqtt.outcomes.stored == 2 }
        await harness.stop()
        #expect(mqtt.client.status.state == .stopped)
    }

    /// A backlog is journaled and acknowledged in bursts: a read pass takes every message waiting in the socket.
    /// Once libmosquitto's internal wake-up pipe was full (a byte per queued PUBACK, and nothing reads it under
    /// this loop), the EAGAIN of its failing write ended every pass after one message: 2,700 of these 3,000
    /// messages went one journal write and one acknowledgement at a time.
    @Test func backlogIsJournaledInReadPassesOfManyMessages() async throws {
        let broker = try MosquittoBroker(extra: "max_queued_messages 0")
        defer { broker.stop() }
        let harness = try await IngestHarness(systemClock: true, start: false)
        try await harness.start()
        // Register the persistent session, then leave.
        let away = try transport(harness, port: broker.port, id: "backlog")
        away.startIngest()
        try await away.client.waitUntilReady()
        try await eventually("subscribed") { away.client.status.subscriptions.first?.grantedQoS == 1 }
        await away.stopIngest()
        // The backlog, queued by the broker while the subscriber is away.
        let count = 3_000
        let publisher = try MQTTClient(configuration: clientConfiguration(port: broker.port, id: "pub", clean: true))
        publisher.start()
        try await publisher.waitUntilReady()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<count {
                group.addTask {
                    let body = #"{"ts": \#(1_700_000_000_000 + i), "temp": \#(i)}"#
                    try await publisher.publish(topic: "devices/d-1/telemetry", payload: Array(body.utf8), qos: 1)
                }
            }
            try await group.waitForAll()
        }
        await publisher.stop()
        let mqtt = try transport(harness, port: broker.port, id: "backlog")
        mqtt.startIngest()
        try await eventually("\(count) stored", seconds: 30) { mqtt.outcomes.stored == count }
        let outcomes = mqtt.outcomes
        #expect(outcomes.readPasses * 10 <= count, "\(outcomes.readPasses) read passes for \(count) messages")
        #expect(try await harness.waitForPoints("d-1", "temp", count: count).count == count)
        await mqtt.stopIngest()
        await harness.stop()
    }

    @Test func sharedSubscriptionSpreadsMessagesOverTwoClients() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let harness = try await IngestHarness(systemClock: true, start: false)
        let a = try transport(harness, port: broker.port, id: "shared-a", share: "ingest")
        let b = try transport(harness, port: broker.port, id: "shared-b", share: "ingest")
        try await harness.start([a, b])
        try await a.client.waitUntilReady()
        try await b.client.waitUntilReady()
        #expect(a.client.status.subscriptions.first?.filter == "$share/ingest/devices/+/telemetry")

        let publisher = try MQTTClient(configuration: clientConfiguration(port: broker.port, id: "pub", clean: true))
        publisher.start()
        try await publisher.waitUntilReady()
        let n = 200
        for i in 0..<n {
            let body = #"{"ts": \#(1_700_000_000_000 + i), "seq": \#(i)}"#
            try await publisher.publish(topic: "devices/d-\(i % 3 + 1)/telemetry", payload: Array(body.utf8), qos: 1)
        }
        await publisher.stop()
        try await eventually("all \(n) messages stored") {
            var total = 0
            for d in 1...3 { total += try await harness.series("d-\(d)", "seq").count }
            return total == n
        }
        let ina = a.client.status.messagesIn
        let inb = b.client.status.messagesIn
        #expect(ina + inb == n, "each message goes to exactly one member of the group")
        #expect(ina > 0 && inb > 0, "the broker spreads the group's messages: a=\(ina) b=\(inb)")
        await harness.stop()
    }

    @Test func downlinkPublishReachesADevice() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let harness = try await IngestHarness(systemClock: true, start: false)
        let mqtt = try transport(harness, port: broker.port, id: "downlink")
        try await harness.start([mqtt])
        try await mqtt.client.waitUntilReady()

        let sub = try ChildProcess([
            try peerBinary("/usr/bin/mosquitto_sub", package: "mosquitto-clients"), "-h", "127.0.0.1", "-p",
            "\(broker.port)", "-q", "1", "-t", "devices/d-1/commands", "-C", "1", "-v",
        ])
        defer { sub.stop(signal: SIGKILL) }
        // mosquitto_sub has no ready signal: publish retained, so it gets the message whenever it subscribes.
        try await mqtt.publish(
            topic: "devices/d-1/commands", payload: Array(#"{"relay": "on"}"#.utf8), qos: 1, retain: true)
        #expect(sub.readLine() == #"devices/d-1/commands {"relay": "on"}"#)
        #expect(mqtt.client.status.messagesOut == 1)
        await harness.stop()
    }

    @Test func clientSubscribesWithItsOwnHandlerAndPublishes() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let received = Mutex<[MQTTMessage]>([])
        let group = MQTTEventLoopGroup(threads: 1)
        defer { group.shutdown() }
        let a = try MQTTClient(configuration: clientConfiguration(port: broker.port, id: "a"), group: group)
        let b = try MQTTClient(configuration: clientConfiguration(port: broker.port, id: "b"), group: group)
        try a.subscribe("control/test/v1/response", qos: 1) { m in received.withLock { $0.append(m) } }
        try a.subscribe("other/#", qos: 0) { _ in Issue.record("the first matching subscription gets the message") }
        a.start()
        b.start()
        try await a.waitUntilReady()
        try await b.waitUntilReady()
        for i in 0..<10 {
            try await b.publish(topic: "control/test/v1/response", payload: Array("r\(i)".utf8), qos: i % 3)
        }
        try await eventually("10 responses") { received.withLock { $0.count } == 10 }
        #expect(
            received.withLock { $0.map { String(decoding: $0.payload, as: UTF8.self) } } == (0..<10).map { "r\($0)" })
        #expect(group.clientCount == 2)
        await a.stop()
        await b.stop()
        await #expect(throws: IoTError.self) { try await b.publish(topic: "x", payload: [1]) }
    }

    @Test func malformedOversizeAndMisaddressedMessagesAreCountedAndOthersCarryOn() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let harness = try await IngestHarness(systemClock: true, start: false)
        let mqtt = try transport(harness, port: broker.port, id: "bad-input", maxPayload: 1_000)
        try await harness.start([mqtt])
        try await mqtt.client.waitUntilReady()
        try mosquittoPub(port: broker.port, topic: "devices/d-1/telemetry", message: "{not json")
        try mosquittoPub(
            port: broker.port, topic: "devices/d-1/telemetry",
            message: "{\"temp\": \"" + String(repeating: "x", count: 5_000) + "\"}")
        try mosquittoPub(port: broker.port, topic: "devices/nobody/telemetry", message: #"{"temp": 1}"#)
        try mosquittoPub(
            port: broker.port, topic: "devices/d-1/telemetry", message: #"{"ts": 1700000000000, "temp": 20}"#)
        let stored = try await harness.waitForPoints("d-1", "temp", count: 1)
        #expect(stored.map(\.value) == [.number(20)])
        try await eventually("4 messages accounted for") { mqtt.outcomes.stored + mqtt.outcomes.rejected == 4 }
        #expect(mqtt.outcomes.rejected == 3)
        let stats = harness.ingestor.statistics
        #expect(stats.rejected["malformed_payload"] == 1)
        #expect(stats.rejected["payload_too_large"] == 1)
        #expect(stats.rejected["unknown_device"] == 1)
        #expect(mqtt.client.status.state == .connected)
        #expect(mqtt.client.status.reconnects == 0, "bad input never costs the connection")
        await harness.stop()
    }

    /// Issue 17, item 8: the per-device rate limit is the ingestor's, so it covers MQTT too: a message over it is
    /// counted as rejected `rate_limited` (the broker already has its PUBACK) and the client stays connected.
    @Test func messagesOverTheRateLimitAreCountedRateLimited() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let harness = try await IngestHarness(
            configuration: .init(rateLimit: try RateLimit(parsing: "2:60")), systemClock: true, start: false)
        let mqtt = try transport(harness, port: broker.port, id: "rate-limited")
        try await harness.start([mqtt])
        try await mqtt.client.waitUntilReady()
        for i in 0..<3 {
            try mosquittoPub(
                port: broker.port, topic: "devices/d-1/telemetry",
                message: #"{"ts": \#(1_700_000_000_000 + i), "temp": \#(i)}"#)
        }
        try mosquittoPub(
            port: broker.port, topic: "devices/d-2/telemetry", message: #"{"ts": 1700000000000, "temp": 9}"#)
        _ = try await harness.waitForPoints("d-2", "temp", count: 1)
        try await eventually("4 messages accounted for") { mqtt.outcomes.stored + mqtt.outcomes.rejected == 4 }
        #expect(harness.ingestor.statistics.rejected == ["rate_limited": 1])
        #expect(try await harness.waitForPoints("d-1", "temp", count: 2).map(\.value) == [.number(0), .number(1)])
        #expect(mqtt.client.status.state == .connected)
        await harness.stop()
    }

    /// Issue 17, item 4: the device a topic names speaks only for itself unless it is a gateway.
    @Test func aRecordForAnotherDeviceIsCountedForbidden() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let harness = try await IngestHarness(systemClock: true, start: false)
        let mqtt = try MQTTTransport(
            configuration: .init(
                client: clientConfiguration(port: broker.port, id: "gateway-check"), tenant: IngestHarness.tenant,
                subscriptions: [try .init(template: "devices/{uid}/telemetry", parser: SenMLParser())]),
            ingestor: harness.ingestor, logger: Logger(label: "test"))
        try await harness.start([mqtt])
        try await mqtt.client.waitUntilReady()
        try mosquittoPub(
            port: broker.port, topic: "devices/d-1/telemetry", message: #"[{"bn":"d-2","n":"temp","v":9}]"#)
        try mosquittoPub(
            port: broker.port, topic: "devices/d-1/telemetry", message: #"[{"n":"temp","v":1,"t":1700000000}]"#)
        _ = try await harness.waitForPoints("d-1", "temp", count: 1)
        try await eventually("2 messages accounted for") { mqtt.outcomes.stored + mqtt.outcomes.rejected == 2 }
        #expect(harness.ingestor.statistics.rejected == ["forbidden": 1])
        #expect(mqtt.client.status.state == .connected)
        await harness.stop()
    }
}
