import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Logging
import Synchronization
import Testing

/// The Mosquitto provisioner against a real Mosquitto 2 with the dynamic-security plugin. Devices and the
/// observer are Mosquitto's command-line clients, independent of the platform's code.
@Suite("Mosquitto dynamic-security provisioning", .serialized)
struct DynamicSecurityTests {
    /// A provisioner over the platform's own MQTT client (``MQTTDynamicSecurityChannel``), closed after `body`.
    static func withProvisioner(
        _ broker: MosquittoBroker, policy: BrokerAccountPolicy = .init(),
        _ body: (DynamicSecurityProvisioner) async throws -> Void
    ) async throws {
        let channel = try MQTTDynamicSecurityChannel(
            configuration: .init(
                host: "127.0.0.1", port: broker.port, clientID: "iot-dynsec-\(UInt32.random(in: 0...UInt32.max))",
                username: broker.adminUsername, password: broker.adminPassword, cleanSession: true),
            logger: Logger(label: "test"))
        let provisioner = DynamicSecurityProvisioner(
            configuration: .init(name: "test mosquitto", policy: policy, timeout: .seconds(3)), channel: channel,
            logger: Logger(label: "test"))
        do {
            try await body(provisioner)
        } catch {
            await channel.close()
            throw error
        }
        await channel.close()
    }

    /// A provisioner over Mosquitto's `mosquitto_rr` command-line client (an independent implementation of
    /// the control-topic exchange).
    static func commandLineProvisioner(_ broker: MosquittoBroker, policy: BrokerAccountPolicy = .init())
        -> DynamicSecurityProvisioner
    {
        DynamicSecurityProvisioner(
            configuration: .init(name: "test mosquitto", policy: policy),
            channel: CommandLineDynamicSecurityChannel(
                port: broker.port, username: broker.adminUsername, password: broker.adminPassword),
            logger: Logger(label: "test"))
    }

    @Test func provisionedDevicePublishesOnItsOwnTopicsOnly() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        try await Self.withProvisioner(broker) { provisioner in
            let m1 = DeviceIdentity(tenant: "acme", deviceUID: "meter-1")
            let m2 = DeviceIdentity(tenant: "acme", deviceUID: "meter-2")
            try await provisioner.provision(m1, password: "secret-1")
            try await provisioner.provision(m2, password: "secret-2")
            let mqtt = CommandLineMQTT(port: broker.port)

            let observer = try mqtt.observe(
                username: broker.adminUsername, password: broker.adminPassword, topics: ["devices/#"])
            try observer.waitUntilSubscribed()
            // meter-1 tries meter-2's topic (MQTT 3.1.1 and 5) and a topic outside the policy, then its own;
            // only its own arrives (the broker acknowledges and drops the others).
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "secret-1", topic: "devices/meter-2/telemetry", message: "forged")
                    == 0)
            _ = try mqtt.publish(
                username: "meter-1", password: "secret-1", topic: "devices/meter-2/telemetry", message: "forged-v5",
                version: "5")
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "secret-1", topic: "devices/meter-1/other", message: "off-policy")
                    == 0)
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "secret-1", topic: "devices/meter-1/telemetry", message: "mine-1")
                    == 0)
            let seen = try #require(observer.lines(until: "mine-1"), "the observer never saw meter-1's own message")
            #expect(seen == ["devices/meter-1/telemetry mine-1"])
            // meter-2 still publishes on its own topic
            #expect(
                try mqtt.publish(
                    username: "meter-2", password: "secret-2", topic: "devices/meter-2/telemetry", message: "mine-2")
                    == 0)
            #expect(observer.lines(until: "mine-2") == ["devices/meter-2/telemetry mine-2"])

            // Downlink: its own filter is granted (mosquitto_sub waits for a message until -W: exit 27); another
            // device's is refused (mosquitto_sub ends at once: "All subscription requests were denied.").
            let own = try mqtt.subscribeOnce(
                username: "meter-1", password: "secret-1", topic: "devices/meter-1/downlink/#", seconds: 1)
            #expect(own.status == 27, "subscribed and nothing arrived: mosquitto_sub times out with 27; got \(own)")
            let other = try mqtt.subscribeOnce(
                username: "meter-1", password: "secret-1", topic: "devices/meter-2/downlink/#", seconds: 1)
            #expect(other.status != 27, "a subscription to meter-2's downlink must be refused; got \(other)")
            let wide = try mqtt.subscribeOnce(username: "meter-1", password: "secret-1", topic: "devices/#", seconds: 1)
            #expect(wide.status != 27, "a subscription to devices/# must be refused; got \(wide)")

            // A wrong password is refused at connect (mosquitto_pub exits 5: not authorised).
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "secret-2", topic: "devices/meter-1/telemetry", message: "x") != 0)
        }
    }

    @Test func revokedDeviceCannotConnectAndIsDisconnected() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        try await Self.withProvisioner(broker) { provisioner in
            let m1 = DeviceIdentity(tenant: "acme", deviceUID: "meter-1")
            try await provisioner.provision(m1, password: "secret-1")
            let mqtt = CommandLineMQTT(port: broker.port)
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "secret-1", topic: "devices/meter-1/telemetry", message: "1") == 0)

            // A live session (a subscriber that would wait 30 s) is closed by the revocation.
            let live = try ChildProcess([
                "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", "\(broker.port)", "-u", "meter-1", "-P", "secret-1",
                "-t", "devices/meter-1/downlink/#", "-W", "30",
            ])
            defer { if kill(live.pid, 0) == 0 { live.stop(signal: SIGKILL) } }
            try await Task.sleep(for: .milliseconds(500))
            let started = Date()
            try await provisioner.revoke(m1)
            _ = live.wait()
            #expect(Date().timeIntervalSince(started) < 5, "the broker must close a revoked device's session at once")

            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "secret-1", topic: "devices/meter-1/telemetry", message: "2") != 0)
            // Revoking again (an unknown device) succeeds: revocation is idempotent.
            try await provisioner.revoke(m1)
            // Provisioning again with a new password: the old one stays refused.
            try await provisioner.provision(m1, password: "secret-new")
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "secret-1", topic: "devices/meter-1/telemetry", message: "3") != 0)
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "secret-new", topic: "devices/meter-1/telemetry", message: "4") == 0)
        }
    }

    @Test func clientIDTemplateBindsTheSession() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        try await Self.withProvisioner(broker, policy: BrokerAccountPolicy(clientIDTemplate: "{uid}")) { provisioner in
            try await provisioner.provision(DeviceIdentity(tenant: "acme", deviceUID: "meter-1"), password: "pw")
            let mqtt = CommandLineMQTT(port: broker.port)
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "pw", topic: "devices/meter-1/telemetry", message: "a",
                    clientID: "meter-1") == 0)
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "pw", topic: "devices/meter-1/telemetry", message: "b",
                    clientID: "meter-2") != 0)
        }
    }

    @Test func unsafeUIDsAndUnreachableBrokersAreClearErrors() async throws {
        let broker = try MosquittoBroker()
        let provisioner = Self.commandLineProvisioner(broker)
        await #expect(throws: IoTError.self) {
            try await provisioner.provision(DeviceIdentity(tenant: "acme", deviceUID: "m+1"), password: "pw")
        }
        broker.stop()
        do {
            try await provisioner.provision(DeviceIdentity(tenant: "acme", deviceUID: "meter-1"), password: "pw")
            Issue.record("provisioning at a stopped broker must fail")
        } catch {
            #expect(error.code == .unavailable || error.code == .timeout)
        }
        // A device of a tenant the broker does not serve is left alone (no broker needed).
        let scoped = Self.commandLineProvisioner(broker, policy: BrokerAccountPolicy(tenants: ["globex"]))
        try await scoped.provision(DeviceIdentity(tenant: "acme", deviceUID: "meter-1"), password: "pw")
    }

    @Test func managementAPITokensProvisionAndRevokeAtTheBroker() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        try await Self.withProvisioner(broker) { provisioner in
            try await PlatformHarness.with(provisioners: [provisioner]) { platform in
                try await platform.addDevice("meter-1")
                let mqtt = CommandLineMQTT(port: broker.port)
                let issued = try await platform.issueToken("meter-1")
                #expect(issued.status == 201)
                let token = try #require(issued.token)
                #expect(
                    try mqtt.publish(
                        username: "meter-1", password: token, topic: "devices/meter-1/telemetry", message: "1") == 0)

                // rotation: the broker takes the newest token
                let rotated = try #require(try await platform.issueToken("meter-1").token)
                #expect(
                    try mqtt.publish(
                        username: "meter-1", password: token, topic: "devices/meter-1/telemetry", message: "2") != 0)
                #expect(
                    try mqtt.publish(
                        username: "meter-1", password: rotated, topic: "devices/meter-1/telemetry", message: "3") == 0)

                #expect(try await platform.api("DELETE", "/api/v1/tenants/acme/devices/meter-1/tokens").status == 200)
                #expect(
                    try mqtt.publish(
                        username: "meter-1", password: rotated, topic: "devices/meter-1/telemetry", message: "4") != 0)

                let again = try #require(try await platform.issueToken("meter-1").token)
                #expect(
                    try mqtt.publish(
                        username: "meter-1", password: again, topic: "devices/meter-1/telemetry", message: "5") == 0)
                #expect(try await platform.api("DELETE", "/api/v1/tenants/acme/devices/meter-1").status == 204)
                #expect(
                    try mqtt.publish(
                        username: "meter-1", password: again, topic: "devices/meter-1/telemetry", message: "6") != 0)
            }
        }
    }

    @Test func brokerDownMakesTheAPIAnswer503AndARetryFinishesTheRevocation() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        try await PlatformHarness.with(provisioners: [Self.commandLineProvisioner(broker)]) { platform in
            try await platform.addDevice("meter-1")
            _ = try #require(try await platform.issueToken("meter-1").token)
            broker.stop()
            let revoke = try await platform.api("DELETE", "/api/v1/tenants/acme/devices/meter-1/tokens")
            #expect(revoke.status == 503)
            #expect(revoke.text.contains("revoke again"))
            let issue = try await platform.issueToken("meter-1")
            #expect(issue.status == 503 && issue.token == nil)
            // the device was not deleted while the broker could not be told
            let delete = try await platform.api("DELETE", "/api/v1/tenants/acme/devices/meter-1")
            #expect(delete.status == 503)
            #expect(try await platform.api("GET", "/api/v1/tenants/acme/devices/meter-1").status == 200)
        }
    }

    @Test func concurrentRequestsShareOneControlConnection() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        try await Self.withProvisioner(broker) { provisioner in
            let uids = (1...20).map { "m-\($0)" }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for uid in uids {
                    group.addTask {
                        try await provisioner.provision(
                            DeviceIdentity(tenant: "acme", deviceUID: uid), password: "pw-\(uid)")
                    }
                }
                try await group.waitForAll()
            }
            let mqtt = CommandLineMQTT(port: broker.port)
            for uid in ["m-1", "m-7", "m-20"] {
                #expect(
                    try mqtt.publish(
                        username: uid, password: "pw-\(uid)", topic: "devices/\(uid)/telemetry", message: "x") == 0)
                #expect(
                    try mqtt.publish(username: uid, password: "pw-m-2", topic: "devices/\(uid)/telemetry", message: "x")
                        != 0)
            }
            // the broker is stopped: requests fail within the timeout, with a clear error
            broker.stop()
            let started = Date()
            do {
                try await provisioner.revoke(DeviceIdentity(tenant: "acme", deviceUID: "m-1"))
                Issue.record("revocation at a stopped broker must fail")
            } catch let error as IoTError {
                #expect(error.code == .timeout || error.code == .unavailable)
                #expect(error.message.contains("dynamic-security"))
            }
            #expect(Date().timeIntervalSince(started) < 8)
        }
    }

    /// A broker that stops answering while its connection stays up (frozen with SIGSTOP): the request fails
    /// with a timeout within the provisioner's 3 s, instead of waiting for the acknowledgement of its publish,
    /// which comes only if the broker ever answers again. (A broker stopped just before a request could leave
    /// the client in that state too, and once hung the whole test run.)
    @Test func aBrokerThatStopsAnsweringTimesOut() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        try await Self.withProvisioner(broker) { provisioner in
            try await provisioner.provision(DeviceIdentity(tenant: "acme", deviceUID: "m-1"), password: "pw-1")
            broker.freeze()
            let outcome = Mutex<Result<Void, any Error>?>(nil)
            let started = Date()
            let revoking = Task {
                let r: Result<Void, any Error>
                do {
                    try await provisioner.revoke(DeviceIdentity(tenant: "acme", deviceUID: "m-1"))
                    r = .success(())
                } catch {
                    r = .failure(error)
                }
                outcome.withLock { $0 = r }
            }
            while outcome.withLock({ $0 }) == nil && Date().timeIntervalSince(started) < 10 {
                try await Task.sleep(for: .milliseconds(20))
            }
            let elapsed = Date().timeIntervalSince(started)
            broker.thaw()
            switch outcome.withLock({ $0 }) {
            case nil:
                Issue.record("the revocation at a frozen broker did not return within 10 s")
                revoking.cancel()
            case .success:
                Issue.record("a revocation nobody answered must fail")
            case .failure(let error as IoTError):
                #expect(error.code == .timeout, "\(error)")
                #expect(error.message.contains("dynamic-security"), "\(error)")
                #expect(elapsed < 8, "took \(elapsed) s")
            case .failure(let error):
                Issue.record("unexpected error: \(error)")
            }
        }
    }

    /// End to end: devices provisioned by the platform publish with their tokens' passwords; the platform's
    /// MQTT transport (logged in as the dynamic-security admin, whose role may read every topic) stores
    /// their data; what a device forged on another device's topic never arrives.
    @Test func provisionedDevicesDataIsStoredAndForgeriesAreNot() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        try await Self.withProvisioner(broker) { provisioner in
            try await provisioner.provision(DeviceIdentity(tenant: "acme", deviceUID: "meter-1"), password: "pw-1")
            try await provisioner.provision(DeviceIdentity(tenant: "acme", deviceUID: "meter-2"), password: "pw-2")
            let ingest = try await RabbitMQTests.Ingest(devices: ["meter-1", "meter-2"])
            let transport = try MQTTTransport(
                configuration: .init(
                    client: .init(
                        host: "127.0.0.1", port: broker.port, clientID: "iotd-ingest", username: broker.adminUsername,
                        password: broker.adminPassword),
                    tenant: "acme", subscriptions: [try .init(template: "devices/{uid}/telemetry", qos: 1)]),
                ingestor: ingest.ingestor, logger: Logger(label: "test"))
            try await ingest.run([ingest.ingestor, transport])
            try await transport.client.waitUntilReady()
            let mqtt = CommandLineMQTT(port: broker.port)
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "pw-1", topic: "devices/meter-1/telemetry", message: #"{"temp": 1}"#)
                    == 0)
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: "pw-1", topic: "devices/meter-2/telemetry", message: #"{"temp": 99}"#
                ) == 0)
            #expect(
                try mqtt.publish(
                    username: "meter-2", password: "pw-2", topic: "devices/meter-2/telemetry", message: #"{"temp": 2}"#)
                    == 0)
            #expect(try await ingest.waitFor("meter-1", "temp", count: 1).map(\.value) == [.number(1)])
            #expect(try await ingest.waitFor("meter-2", "temp", count: 1).map(\.value) == [.number(2)])
            try await Task.sleep(for: .milliseconds(200))
            #expect(
                try await ingest.series("meter-2", "temp").map(\.value) == [.number(2)],
                "the forged 99 must not be stored")
            let deadline = Date().addingTimeInterval(5)
            while transport.outcomes.stored < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(transport.outcomes.stored == 2)
            await ingest.stop()
        }
    }
}
