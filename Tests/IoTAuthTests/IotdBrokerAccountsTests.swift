import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `iotd serve` with `brokerAccounts:` in its configuration, as a real process, with a real Mosquitto
/// (dynamic security): tokens issued and revoked through the management API reach the broker, and the
/// EMQX endpoint answers from the same credentials.
@Suite("iotd brokerAccounts", .serialized)
struct IotdBrokerAccountsTests {
    @Test func iotdProvisionsMosquittoAndAnswersEMQX() async throws {
        try await onOwnThread {
            let broker = try MosquittoBroker()
            defer { broker.stop() }
            let iotd = IotdProcess("iotd-broker-accounts")
            let dir = iotd.directory.path
            let apiPort = iotd.apiPort
            try broker.adminPassword.write(toFile: dir + "/dynsec.password", atomically: false, encoding: .utf8)
            try "emqx-key\n".write(toFile: dir + "/emqx.key", atomically: false, encoding: .utf8)
            try iotd.configure(
                iotd.preamble(logLevel: "warning") + """
                    brokerAccounts:
                      username: "{uid}"
                      publish: ["devices/{uid}/telemetry"]
                      subscribe: ["devices/{uid}/downlink/#"]
                      emqx: { keyFile: \(dir)/emqx.key }
                      mosquitto:
                        - { name: test, host: 127.0.0.1, port: \(broker.port), username: \(broker.adminUsername), passwordFile: \(dir)/dynsec.password, timeoutMillis: 3000 }
                    tenants:
                      - id: acme
                        products:
                          - { id: meter, signals: [{ name: temp }] }
                        devices:
                          - { uid: meter-1, product: meter }
                    """)
            try iotd.start(seconds: 30)
            defer { iotd.stop(signal: SIGKILL) }

            let admin = [
                "Authorization": "Bearer \(IotdProcess.adminKey)", "Content-Type": "application/json",
            ]
            let emqx = ["Authorization": "Bearer emqx-key", "Content-Type": "application/json"]
            let api = try LoopbackHTTPClient(port: apiPort)
            let issued = try api.request(
                "POST", "/api/v1/tenants/acme/devices/meter-1/tokens", headers: admin, body: Array("{}".utf8))
            #expect(issued.status == 201, "\(issued.status) \(issued.text)")
            let object = try JSONSerialization.jsonObject(with: Data(issued.body)) as? [String: Any]
            let token = try #require(object?["token"] as? String)

            let mqtt = CommandLineMQTT(port: broker.port)
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: token, topic: "devices/meter-1/telemetry", message: "{}")
                    == 0)
            let auth = try api.request(
                "POST", "/broker/v1/emqx/auth", headers: emqx,
                body: Array(#"{"username":"meter-1","password":"\#(token)"}"#.utf8))
            #expect(auth.status == 200 && auth.text.contains(#""result":"allow""#), "\(auth.text)")
            let wrongKey = try api.request(
                "POST", "/broker/v1/emqx/auth", headers: admin,
                body: Array(#"{"username":"meter-1","password":"\#(token)"}"#.utf8))
            #expect(wrongKey.status == 401, "the admin key is not the broker key")

            let revoked = try api.request("DELETE", "/api/v1/tenants/acme/devices/meter-1/tokens", headers: admin)
            #expect(revoked.status == 200, "\(revoked.status) \(revoked.text)")
            #expect(
                try mqtt.publish(
                    username: "meter-1", password: token, topic: "devices/meter-1/telemetry", message: "{}")
                    != 0)
            let denied = try api.request(
                "POST", "/broker/v1/emqx/auth", headers: emqx,
                body: Array(#"{"username":"meter-1","password":"\#(token)"}"#.utf8))
            #expect(denied.text.contains(#""result":"deny""#), "\(denied.text)")
        }
    }

    @Test func badBrokerAccountsConfigurationNamesTheKey() async throws {
        try await onOwnThread {
            let dir = try Fixture.temporaryDirectory("iotd-broker-accounts-bad")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            for (yaml, key) in [
                ("brokerAccounts: { username: \"{tenant}\" }", "brokerAccounts"),
                ("brokerAccounts: { emqx: { ignoreUsernames: [] } }", "brokerAccounts.emqx"),
                ("brokerAccounts: { mosquitto: [{ host: 127.0.0.1 }] }", "brokerAccounts.mosquitto[0]"),
            ] {
                try yaml.write(toFile: dir + "/bad.yaml", atomically: false, encoding: .utf8)
                let check = try ChildProcess(
                    [try ChildProcess.builtProduct("iotd"), "serve", "--config", dir + "/bad.yaml", "--check"])
                while check.readLine() != nil {}
                #expect(check.wait() != 0, "\(yaml) must be refused (\(key))")
            }
        }
    }
}
