import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// Notification templates and routing policies saved through the management API are kept in the
/// definition store and come back after `kill -9` and a restart of a real iotd.
@Suite(.serialized) struct NotificationDefinitionsRestartTests {
    @Test func templatesAndPoliciesSavedThroughTheAPISurviveARestart() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-notify-definitions")
            let (httpPort, apiPort) = (iotd.httpPort, iotd.apiPort)
            try iotd.configure(
                iotd.preamble(logLevel: "warning") + """
                    tenants:
                      - id: plant
                        products:
                          - { id: pump, signals: [{ name: temp }] }
                        devices:
                          - { uid: pump-1, product: pump, name: "Pump One" }
                        rules:
                          - { kind: range, id: overheat, devices: { product: pump }, signal: temp, max: 80, alarmWhen: outside, severity: critical, debounce: { count: 1 }, hysteresis: 0 }
                    """)
            let base = "/api/v1/tenants/plant/notifications"
            func api(_ method: String, _ path: String, _ body: String = "") throws -> LoopbackHTTPClient.Response {
                try LoopbackHTTPClient(port: apiPort).request(
                    method, path,
                    headers: [
                        "Authorization": "Bearer \(IotdProcess.adminKey)",
                        "Content-Type": "application/json",
                    ], body: Array(body.utf8))
            }

            try iotd.start()
            let template =
                #"{"id": "hot", "kind": "alarm_raised", "subject": "${device_name} overheat", "body": "KEPT ${device.name} at ${current_value}"}"#
            let policy =
                #"{"id": "ops", "match": {"events": ["raised"]}, "templates": {"raised": "hot"}, "targets": [{"channel": "inbox", "recipients": ["alice"]}]}"#
            let dropped = #"{"id": "dropped", "match": {}, "targets": [{"channel": "inbox", "recipients": ["bob"]}]}"#
            #expect(try api("POST", base + "/templates", template).status == 201)
            #expect(try api("POST", base + "/policies", policy).status == 201)
            #expect(try api("POST", base + "/policies", dropped).status == 201)
            #expect(try api("DELETE", base + "/policies/dropped").status == 204)

            #expect(iotd.stop(signal: SIGKILL) & 0x7f == SIGKILL)
            try iotd.start()

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
            #expect(iotd.stop(signal: SIGKILL) & 0x7f == SIGKILL)
            try iotd.start()
            #expect(try api("GET", base + "/templates/hot").status == 404)
            #expect((json(try api("GET", base + "/policies")) as? [Any])?.isEmpty == true)
            #expect(iotd.stop(signal: SIGTERM) == 0)
        }
    }
}
