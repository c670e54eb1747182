import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Logging
import Testing

/// Broker restarts, refused credentials, a broker that is down at start, and TLS.
@Suite(.serialized) struct MQTTConnectionTests {
    func ingest(
        _ harness: IngestHarness, _ client: MQTTClient.Configuration
    ) throws -> MQTTTransport {
        try MQTTTransport(
            configuration: .init(
                client: client, tenant: IngestHarness.tenant,
                subscriptions: [try .init(template: "devices/{uid}/telemetry", qos: 1)]),
            ingestor: harness.ingestor, logger: Logger(label: "test"))
    }

    @Test func messagesPublishedWhileDisconnectedAreStoredAfterReconnect() async throws {
        let broker = try MosquittoBroker(persistence: true)
        defer { broker.stop() }
        let harness = try await IngestHarness(systemClock: true, start: false)
        var c = clientConfiguration(port: broker.port, id: "restart-ingest")
        c.reconnectDelay = .milliseconds(2_000)  // long enough to publish while it is away
        c.maxReconnectDelay = .milliseconds(2_000)
        let mqtt = try ingest(harness, c)
        try await harness.start([mqtt])
        try await mqtt.client.waitUntilReady()
        try mosquittoPub(
            port: broker.port, topic: "devices/d-1/telemetry", message: #"{"ts": 1700000000000, "seq": 0}"#)
        _ = try await harness.waitForPoints("d-1", "seq", count: 1)

        broker.stop()  // SIGTERM: the broker saves the client's session
        try await eventually("the client noticed", seconds: 5) { mqtt.client.status.state != .connected }
        try broker.start()
        for i in 1...20 {
            try mosquittoPub(
                port: broker.port, topic: "devices/d-\(i % 3 + 1)/telemetry",
                message: #"{"ts": \#(1_700_000_000_000 + i), "seq": \#(i)}"#)
        }
        #expect(mqtt.client.status.state != .connected, "published while the client was away")
        try await eventually("21 messages stored", seconds: 15) {
            var n = 0
            for d in 1...3 { n += try await harness.series("d-\(d)", "seq").count }
            return n == 21
        }
        #expect(mqtt.client.status.reconnects >= 1)
        #expect(mqtt.client.status.state == .connected)
        await harness.stop()
    }

    @Test func refusedCredentialsGiveAClearErrorAndNoReconnectLoop() async throws {
        let dir = TemporaryDirectory("mqtt-passwd")
        let passwd = try peerBinary("/usr/bin/mosquitto_passwd", package: "mosquitto")
        let p = try ChildProcess([passwd, "-b", "-c", dir.path + "/passwd", "iotd", "right-password"])
        #expect(p.wait() == 0)
        let broker = try MosquittoBroker(extra: "allow_anonymous false\npassword_file \(dir.path)/passwd")
        defer { broker.stop() }
        let harness = try await IngestHarness(systemClock: true, start: false)
        var wrong = clientConfiguration(port: broker.port, id: "bad-creds")
        wrong.username = "iotd"
        wrong.password = "wrong-password"
        let bad = try ingest(harness, wrong)
        var right = wrong
        right.clientID = "good-creds"
        right.password = "right-password"
        let good = try ingest(harness, right)
        try await harness.start([bad, good])
        await #expect(throws: IoTError.self) { try await bad.client.waitUntilReady(timeoutMillis: 5_000) }
        try await good.client.waitUntilReady()
        try await Task.sleep(for: .seconds(2))
        let status = bad.client.status
        #expect(status.state == .failed)
        #expect(status.lastError?.contains("not authorised") == true, "\(status.lastError ?? "no error")")
        #expect(status.reconnects <= 1, "no reconnect loop after a refusal: \(status.reconnects)")
        try mosquittoPub(
            port: broker.port, topic: "devices/d-1/telemetry", message: #"{"ts": 1700000000000, "temp": 1}"#,
            extra: ["-u", "iotd", "-P", "right-password"])
        _ = try await harness.waitForPoints("d-1", "temp", count: 1)
        #expect(good.client.status.state == .connected, "the other client carries on")
        await harness.stop()
    }

    @Test func brokerDownAtStartIsRetriedWithBackoff() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let harness = try await IngestHarness(systemClock: true, start: false)
        var c = clientConfiguration(port: port, id: "early")
        c.reconnectDelay = .milliseconds(100)
        c.maxReconnectDelay = .milliseconds(800)
        let mqtt = try ingest(harness, c)
        try await harness.start([mqtt])
        try await Task.sleep(for: .seconds(2))
        let down = mqtt.client.status
        #expect(down.state == .reconnecting || down.state == .connecting)
        #expect(down.lastError?.lowercased().contains("refused") == true, "\(down.lastError ?? "no error")")
        // 100, 200, 400, 800, 800 ms (±25 %): a handful of attempts in two seconds, not a tight loop.
        #expect((2...8).contains(down.reconnects), "attempts in 2 s: \(down.reconnects)")

        let broker = try MosquittoBroker(port: port)
        defer { broker.stop() }
        try await mqtt.client.waitUntilReady(timeoutMillis: 5_000)
        try mosquittoPub(port: port, topic: "devices/d-2/telemetry", message: #"{"ts": 1700000000000, "temp": 5}"#)
        _ = try await harness.waitForPoints("d-2", "temp", count: 1)
        await harness.stop()
    }

    @Test func tlsWithATestCAAndVerificationOnByDefault() async throws {
        let dir = TemporaryDirectory("mqtt-tls")
        let openssl = try peerBinary("/usr/bin/openssl", package: "openssl")
        func run(_ args: [String]) throws {
            let p = try ChildProcess([openssl] + args)
            guard p.wait() == 0 else { throw TestFailure("openssl \(args.joined(separator: " ")) failed") }
        }
        let d = dir.path
        try run([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=iot test CA", "-keyout",
            "\(d)/ca.key", "-out", "\(d)/ca.crt",
        ])
        try run([
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "\(d)/server.key", "-out",
            "\(d)/server.csr",
        ])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(
            toFile: "\(d)/san.ext", atomically: true, encoding: .utf8)
        try run([
            "x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.crt", "-CAkey", "\(d)/ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "\(d)/san.ext", "-out", "\(d)/server.crt",
        ])
        let broker = try MosquittoBroker(extra: "cafile \(d)/ca.crt\ncertfile \(d)/server.crt\nkeyfile \(d)/server.key")
        defer { broker.stop() }

        let harness = try await IngestHarness(systemClock: true, start: false)
        var trusted = clientConfiguration(port: broker.port, id: "tls-ok")
        trusted.tls = .init(caFile: "\(d)/ca.crt")
        var untrusted = clientConfiguration(port: broker.port, id: "tls-untrusted")
        untrusted.tls = .init()  // the system's authorities: they do not know the test CA
        let ok = try ingest(harness, trusted)
        let refused = try ingest(harness, untrusted)
        try await harness.start([ok, refused])
        try await ok.client.waitUntilReady()
        await #expect(throws: IoTError.self) { try await refused.client.waitUntilReady(timeoutMillis: 2_000) }
        #expect(refused.client.status.state != .connected, "verification is on by default")

        // Publish over TLS with our own client as well.
        let publisher = try MQTTClient(
            configuration: {
                var c = clientConfiguration(port: broker.port, id: "tls-pub", clean: true)
                c.tls = .init(caFile: "\(d)/ca.crt")
                return c
            }())
        publisher.start()
        try await publisher.waitUntilReady()
        try await publisher.publish(
            topic: "devices/d-3/telemetry", payload: Array(#"{"ts": 1700000000000, "temp": 7}"#.utf8))
        await publisher.stop()
        let points = try await harness.waitForPoints("d-3", "temp", count: 1)
        #expect(points.map(\.value) == [.number(7)])
        await harness.stop()
    }
}
