import Foundation
import IoTCore
import IoTProtocols
import IoTTesting
import Logging
import ServiceLifecycle
import Testing

/// RabbitMQ's MQTT plugin as a second broker: the platform's MQTT transport subscribes to it, parses and
/// stores; with a fixed client id and a persistent session it gets what was published while it was away.
@Suite("RabbitMQ MQTT plugin", .serialized)
struct RabbitMQTests {
    static let tenant: TenantID = "acme"

    final class Ingest: @unchecked Sendable {
        let registry = InMemoryRegistryStore()
        let points = InMemoryPointStore()
        let ingestor: Ingestor
        private var group: ServiceGroup?
        private var task: Task<Void, any Error>?

        init(devices: [String] = ["r-1", "r-2"]) async throws {
            try await registry.saveTenant(Tenant(id: RabbitMQTests.tenant))
            try await registry.saveProduct(
                .tenant(RabbitMQTests.tenant),
                Product(id: "thermo", signals: [Signal(name: "temp"), Signal(name: "seq")]))
            for uid in devices {
                try await registry.saveDevice(.tenant(RabbitMQTests.tenant), Device(uid: uid, product: "thermo"))
            }
            ingestor = Ingestor(
                journal: InMemoryJournal(), pointStore: points, registry: registry, logger: Logger(label: "test"))
        }

        func run(_ services: [any Service]) async throws {
            let group = ServiceGroup(configuration: .init(services: services, logger: Logger(label: "test")))
            self.group = group
            task = Task { try await group.run() }
            while !ingestor.isReady { try await Task.sleep(for: .milliseconds(2)) }
        }

        func stop() async {
            await group?.triggerGracefulShutdown()
            _ = try? await task?.value
        }

        func series(_ device: String, _ signal: String) async throws -> [Point] {
            try await points.range(
                .tenant(RabbitMQTests.tenant), series: SeriesKey(device: device, signal: signal), from: 0, to: .max,
                limit: nil,
                order: .ascending)
        }

        func waitFor(_ device: String, _ signal: String, count: Int, seconds: Double = 15) async throws -> [Point] {
            let deadline = Date().addingTimeInterval(seconds)
            while true {
                let got = try await series(device, signal)
                if got.count >= count { return got }
                if Date() > deadline {
                    throw FixtureFailure(
                        "\(device).\(signal): \(got.count) points after \(seconds) s, expected \(count)")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    static func transport(_ ingestor: Ingestor, port: Int) throws -> MQTTTransport {
        try MQTTTransport(
            configuration: .init(
                client: .init(
                    host: "127.0.0.1", port: port, clientID: "iotd-rabbit-ingest", username: "guest", password: "guest",
                    cleanSession: false),
                tenant: tenant, subscriptions: [try .init(template: "devices/{uid}/telemetry", qos: 1)]),
            ingestor: ingestor, logger: Logger(label: "test"))
    }

    @Test func transportSubscribesParsesAndStoresFromRabbitMQ() async throws {
        let rabbit = try await onOwnThread { try RabbitMQBroker() }  // its start blocks for seconds
        defer { rabbit.stop() }
        let mqtt = CommandLineMQTT(port: rabbit.mqttPort)

        let ingest = try await Ingest()
        let first = try Self.transport(ingest.ingestor, port: rabbit.mqttPort)
        try await ingest.run([ingest.ingestor, first])
        try await first.client.waitUntilReady(timeoutMillis: 20_000)
        #expect(first.client.status.subscriptions.first?.grantedQoS == 1)

        #expect(
            try mqtt.publish(
                username: "guest", password: "guest", topic: "devices/r-1/telemetry",
                message: #"{"ts": 1700000000000, "temp": 21.5}"#) == 0)
        #expect(
            try mqtt.publish(username: "guest", password: "guest", topic: "devices/r-2/telemetry", message: "not json")
                == 0)
        #expect(
            try mqtt.publish(
                username: "guest", password: "guest", topic: "devices/r-2/telemetry",
                message: #"{"ts": 1700000000001, "temp": 19}"#) == 0)
        #expect(try await ingest.waitFor("r-1", "temp", count: 1).map(\.value) == [.number(21.5)])
        #expect(try await ingest.waitFor("r-2", "temp", count: 1).map(\.value) == [.number(19)])
        // the transport counts after the journal receipt, which may be just after the points are visible
        let deadline = Date().addingTimeInterval(5)
        while first.outcomes.stored + first.outcomes.rejected < 3 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(first.outcomes.stored == 2)
        #expect(first.outcomes.rejected == 1, "the malformed payload is rejected and counted; \(first.outcomes)")

        // downlink through RabbitMQ to a device
        // RabbitMQ has no $SYS topics to tell when the subscription is in place: give it time instead
        let device = try mqtt.observe(
            username: "guest", password: "guest", topics: ["devices/r-1/downlink"], sysReadiness: false)
        try await Task.sleep(for: .milliseconds(500))
        try await first.publish(topic: "devices/r-1/downlink", payload: Array("reboot".utf8), qos: 1)
        #expect(device.lines(until: "reboot") == ["devices/r-1/downlink reboot"])

        // the transport goes away; RabbitMQ keeps its persistent session's QoS 1 messages meanwhile
        await ingest.stop()
        for i in 1...5 {
            #expect(
                try mqtt.publish(
                    username: "guest", password: "guest", topic: "devices/r-1/telemetry",
                    message: #"{"ts": \#(1_700_000_001_000 + i), "seq": \#(i)}"#) == 0)
        }
        let ingest2 = try await Ingest()
        let second = try Self.transport(ingest2.ingestor, port: rabbit.mqttPort)
        try await ingest2.run([ingest2.ingestor, second])
        let seq = try await ingest2.waitFor("r-1", "seq", count: 5)
        #expect(seq.map(\.value) == (1...5).map { .number(Double($0)) })
        let deadline2 = Date().addingTimeInterval(5)
        while second.outcomes.stored < 5 && Date() < deadline2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(second.outcomes.stored == 5)
        await ingest2.stop()
    }
}
