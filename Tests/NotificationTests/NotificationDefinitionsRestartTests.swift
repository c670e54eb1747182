import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// Notification templates and routing policies saved through the management API are kept in the
/// definition store and come back after `kill -9` and a restart of a real iotd.
@Suite(.serialized) struct NotificationDefinitionsRestartTests {
    @Test func templatesAndPoliciesSavedThroughTheAPISurviveARestart() async throws {
        try await onOwnThread {
            let dir = TemporaryDirectory("iotd-notify-definitions")
            let httpPort = ChildProcess.freeLoopbackPort()
            let apiPort = ChildProcess.freeLoopbackPort()
            let config = dir.path + "/iotd.yaml"
            try """
            dataDirectory: \(dir.path)/data
            http: { port: \(httpPort) }
            management: { port: \(apiPort), adminAPIKey: test-admin-key-0123456789abcdef0123 }
            logging: { level: warning }
            tenants:
              - id: plant
                products:
                  - { id: pump, signals: [{ name: temp }] }
                devices:
                  - { uid: pump-1, product: pump, name: "Pump One" }
                rules:
                  - { kind: range, id: overheat, devices: { product: pump }, signal: temp, max: 80, alarmWhen: outside, severity: critical, debounce: { count: 1 }, hysteresis: 0 }
            """.write(toFile: config, atomically: false, encoding: .utf8)
            let iotd = try ChildProcess.builtProduct("iotd")
            let base = "/api/v1/tenants/plant/notifications"
            func api(_ method: String, _ path: String, _ body: String = "") throws -> LoopbackHTTPClient.Response {
                try LoopbackHTTPClient(port: apiPort).request(
                    method, path,
                    headers: [
                        "Authorization": "Bearer test-admin-key-0123456789abcdef0123",
                        "Content-Type": "application/json",
                    ], body: Array(body.utf8))
            }

            var server = try ChildProcess([iotd, "serve", "--config", config])
            try waitFor(port: apiPort, path: "/readyz")
            let template =
                #"{"id": "hot", "kind": "alarm_raised", "subject": "${device_name} overheat", "body": "KEPT ${device.name} at ${current_value}"}"#
            let policy =
                #"{"id": "ops", "match": {"events": ["raised"]}, "templates": {"raised": "hot"}, "targets": [{"channel": "inbox", "recipients": ["alice"]}]}"#
            let dropped = #"{"id": "dropped", "match": {}, "targets": [{"channel": "inbox", "recipients": ["bob"]}]}"#
            #expect(try api("POST", base + "/templates", template).status == 201)
            #expect(try api("POST", base + "/policies", policy).status == 201)
            #expect(try api("POST", base + "/policies", dropped).status == 201)
            #expect(try api("DELETE", base + "/policies/dropped").status == 204)

            #expect(server.stop(signal: SIGKILL) & 0x7f == SIGKILL)
            server = try ChildProcess([iotd, "serve", "--config", config])
            defer { server.stop(signal: SIGKILL) }
            try waitFor(port: apiPort, path: "/readyz")

            let kept = try api("GET", base + "/templates/hot")
            #expect(kept.status == 200 && kept.text.contains("KEPT ${device.name}"), "\(kept.status) \(kept.text)")
            let policies = json(try api("GET", base + "/policies")) as? [[String: Any]]
            #expect(policies?.compactMap { $0["id"] as? String } == ["ops"], "\(String(describing: policies))")

            // The restored policy and template are live: an alarm lands in alice's inbox, rendered with them.
            let issued = try api("POST", "/api/v1/tenants/plant/devices/pump-1/tokens", "{}")
            let token = try #require((json(issued) as? [String: Any])?["token"] as? String, "\(issued.text)")
            let posted = try LoopbackHTTPClient(port: httpPort).request(
                "POST", "/api/v1/devices/pump-1/telemetry", headers: ["Authorization": "Bearer \(token)"],
                body: Array(#"{"temp": 95}"#.utf8))
            #expect(posted.status == 200, "\(posted.status) \(posted.text)")
            var messages: [[String: Any]] = []
            for _ in 0..<100 {
                messages =
                    ((json(try api("GET", base + "/inbox/alice")) as? [String: Any])?["messages"] as? [[String: Any]])
                    ?? []
                if !messages.isEmpty { break }
                usleep(100_000)
            }
            #expect(messages.count == 1, "\(messages)")
            #expect((messages.first?["body"] as? String)?.hasPrefix("KEPT Pump One at 95") == true, "\(messages)")

            // A template deleted through the API stays deleted after the next restart.
            #expect(try api("DELETE", base + "/policies/ops").status == 204)
            #expect(try api("DELETE", base + "/templates/hot").status == 204)
            #expect(server.stop(signal: SIGKILL) & 0x7f == SIGKILL)
            server = try ChildProcess([iotd, "serve", "--config", config])
            try waitFor(port: apiPort, path: "/readyz")
            #expect(try api("GET", base + "/templates/hot").status == 404)
            #expect((json(try api("GET", base + "/policies")) as? [Any])?.isEmpty == true)
            #expect(server.stop(signal: SIGTERM) == 0)
        }
    }
}
