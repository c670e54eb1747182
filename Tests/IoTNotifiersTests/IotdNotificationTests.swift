import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// `iotd serve` as a real process: alarms over HTTP ingest → notifications; template validation and
/// the outbox and inbox over the management API; `kill -9` with notifications pending.
@Suite(.serialized) struct IotdNotificationTests {
    @Test func killNineWithNotificationsPendingDeliversThemAfterRestart() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-notify")
            let (httpPort, apiPort) = (iotd.httpPort, iotd.apiPort)
            let sinkPort = ChildProcess.freeLoopbackPort()
            try iotd.configure(
                iotd.preamble() + """
                    outbound: { allow: ["127.0.0.1"] }
                    notifications:
                      initialBackoffMillis: 200
                      maxBackoffMillis: 1000
                      maxAttempts: 1000
                      digestThreshold: 0
                      channels:
                        - { name: ops-webhook, type: webhook, url: "http://127.0.0.1:\(sinkPort)/webhook", secret: webhook-secret }
                        - { name: ops-dingtalk, type: dingtalk, url: "http://127.0.0.1:\(sinkPort)/dingtalk?access_token=dt-token", secret: dingtalk-secret, messagesPerMinute: 600 }
                      groups:
                        ops: [{ name: alice, addresses: { inbox: alice } }]
                    tenants:
                      - id: plant
                        products:
                          - { id: pump, signals: [{ name: temp }] }
                        devices:
                          - { uid: pump-1, product: pump, name: "Pump One" }
                          - { uid: pump-2, product: pump, name: "Pump Two" }
                          - { uid: pump-3, product: pump, name: "Pump Three" }
                        rules:
                          - { kind: range, id: overheat, devices: { product: pump }, signal: temp, max: 80, alarmWhen: outside, severity: critical, debounce: { count: 1 }, hysteresis: 0 }
                        notifications:
                          templates:
                            - { id: hot, kind: alarm_raised, subject: "${device_name} overheat", body: "HOT ${device.name} ${alarm_id} value ${current_value}" }
                          policies:
                            - { id: ops, match: { events: [raised] }, templates: { raised: hot }, targets: [{ channel: ops-webhook }, { channel: ops-dingtalk }, { channel: inbox, recipients: ["group:ops"] }] }
                    """)
            let admin = ["Authorization": "Bearer \(IotdProcess.adminKey)"]
            let base = "/api/v1/tenants/plant/notifications"

            try iotd.start(seconds: 30)
            defer { iotd.stop(signal: SIGKILL) }
            let api = try LoopbackHTTPClient(port: apiPort)

            // Templates are validated when saved: an unknown variable is a 400 that names it.
            let bad = try api.request(
                "POST", base + "/templates", headers: admin,
                body: Array(
                    #"{"id": "t1", "kind": "alarm_raised", "body": "Device ${device_name} at ${temprature}"}"#.utf8)
            )
            #expect(bad.status == 400, "\(bad.status) \(bad.text)")
            #expect(bad.text.contains("unknown variable \\\"temprature\\\""), "\(bad.text)")
            let unclosed = try api.request(
                "POST", base + "/templates", headers: admin,
                body: Array(#"{"id": "t2", "kind": "alarm_raised", "body": "x ${device_name"}"#.utf8))
            #expect(unclosed.status == 400 && unclosed.text.contains("unclosed"), "\(unclosed.text)")
            let badPolicy = try api.request(
                "POST", base + "/policies", headers: admin,
                body: Array(#"{"id": "p", "match": {}, "targets": [{"channel": "pager"}]}"#.utf8))
            #expect(badPolicy.status == 400 && badPolicy.text.contains("pager"), "\(badPolicy.text)")

            // Raise three alarms while the sink is down.
            for uid in ["pump-1", "pump-2", "pump-3"] {
                let t = try api.request(
                    "POST", "/api/v1/tenants/plant/devices/\(uid)/tokens", headers: admin, body: Array("{}".utf8))
                let token = try #require((json(t) as? [String: Any])?["token"] as? String, "\(t.text)")
                let r = try LoopbackHTTPClient(port: httpPort).request(
                    "POST", "/api/v1/devices/\(uid)/telemetry", headers: ["Authorization": "Bearer \(token)"],
                    body: Array(#"{"temp": 97.5}"#.utf8))
                #expect(r.status == 200, "\(r.status) \(r.text)")
            }
            // The inbox got its three at once; the two HTTP channels are retrying.
            var pending: [[String: Any]] = []
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                pending =
                    (json(try api.request("GET", base + "/outbox?status=pending", headers: admin)) as? [[String: Any]])
                    ?? []
                if pending.count == 6, pending.allSatisfy({ ($0["attempts"] as? Int ?? 0) >= 1 }) { break }
                usleep(100_000)
            }
            #expect(pending.count == 6, "pending: \(pending)")
            #expect(pending.allSatisfy { ($0["lastError"] as? String)?.contains("127.0.0.1") == true })
            let inbox = json(try api.request("GET", base + "/inbox/alice", headers: admin)) as? [String: Any]
            #expect(inbox?["unread"] as? Int == 3, "\(String(describing: inbox))")
            let first = try #require((inbox?["messages"] as? [[String: Any]])?.first)
            #expect((first["body"] as? String)?.hasPrefix("HOT Pump") == true)
            let read = try api.request(
                "POST", base + "/inbox/alice/\(first["id"] as? String ?? "")/read", headers: admin)
            #expect(read.status == 204)

            // kill -9 with the six pending, then the sink comes up and iotd restarts.
            let status = iotd.stop(signal: SIGKILL)
            #expect(status & 0x7f == SIGKILL)
            let sink = try Peer.httpSink(port: sinkPort)
            defer { sink.stop() }
            try iotd.start(seconds: 30)
            #expect(sink.waitForRecords(30) { $0.filter { $0["ok"] as? Bool == true }.count >= 6 })
            usleep(500_000)
            for channel in ["webhook", "dingtalk"] {
                let records = sink.records(channel: channel)
                #expect(records.count == 3, "\(channel): \(records.count)")
                #expect(records.allSatisfy { $0["ok"] as? Bool == true }, "\(channel): \(records)")
            }
            let texts = sink.records(channel: "webhook").compactMap {
                ($0["payload"] as? [String: Any])?["body"] as? String
            }
            #expect(Set(texts.compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }).count == 1)
            for name in ["Pump One", "Pump Two", "Pump Three"] {
                #expect(texts.contains { $0.contains(name) }, "\(name) in \(texts)")
            }
            let api2 = try LoopbackHTTPClient(port: apiPort)
            let delivered =
                json(try api2.request("GET", base + "/outbox?status=delivered", headers: admin)) as? [[String: Any]]
            #expect(delivered?.count == 9, "3 inbox + 6 after the restart")
            let unread =
                json(try api2.request("GET", base + "/inbox/alice?unread=true", headers: admin)) as? [String: Any]
            #expect(unread?["unread"] as? Int == 2, "the read mark survived")
            let channels = json(try api2.request("GET", base + "/channels", headers: admin)) as? [[String: Any]]
            #expect(channels?.count == 3)
            #expect(iotd.stop(signal: SIGTERM) == 0)
        }
    }
}
