import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 17's crashes, against a real iotd: numbers at the ends of Int64 from the management API, a device
/// and the stored definitions neither stop the process nor keep it from starting again.
@Suite(.serialized) struct OverflowTests {
    @Test func extremeNumbersAreRefusedAndAStoredBadDefinitionIsSetAside() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-overflow")
            let (dir, httpPort, apiPort) = (iotd.directory, iotd.httpPort, iotd.apiPort)
            try iotd.configure(
                iotd.preamble() + """
                    tenants:
                      - id: t1
                        products:
                          - { id: thermo, signals: [{ name: temp }] }
                        devices:
                          - { uid: d-1, product: thermo }
                    """)
            var server = try iotd.start()
            func api(_ method: String, _ path: String, _ body: String = "") throws -> (status: Int, text: String) {
                try IotdProcess.api(port: apiPort, method, path, body)
            }

            // The request that stopped the daemon (3 of 3) is a 400 naming the field; the daemon answers on.
            let overflow =
                #"{"kind": "offline", "id": "o", "devices": {"device": "d-1"}, "intervalMillis": 1000, "toleranceMillis": 9223372036854775807, "severity": "major"}"#
            let refused = try api("POST", "/api/v1/tenants/t1/rules", overflow)
            #expect(refused.status == 400 && refused.text.contains("toleranceMillis"), "\(refused)")
            for (field, value) in [
                ("intervalMillis", "9223372036854775807"), ("intervalMillis", "-9223372036854775808"),
                ("intervalMillis", "0"),
            ] {
                let body =
                    #"{"kind": "offline", "id": "o", "devices": {"device": "d-1"}, "\#(field)": \#(value), "toleranceMillis": 0, "severity": "major"}"#
                let r = try api("POST", "/api/v1/tenants/t1/rules", body)
                #expect(r.status == 400 && r.text.contains(field), "\(value): \(r)")
            }
            let device = try api(
                "PUT", "/api/v1/tenants/t1/devices/d-1",
                #"{"product": "thermo", "pushIntervalMillis": 9223372036854775807}"#)
            #expect(device.status == 400 && device.text.contains("pushIntervalMillis"), "\(device)")
            let debounce =
                #"{"kind": "range", "id": "r", "devices": {"device": "d-1"}, "signal": "temp", "max": 1, "debounce": {"durationMillis": 9223372036854775807}}"#
            #expect(try api("POST", "/api/v1/tenants/t1/rules", debounce).status == 400)
            let job =
                #"{"id": "j", "cron": "1/9223372036854775807 * * * *", "timeZone": "UTC", "leadMillis": 9223372036854775807, "parameters": [], "catchUp": {"policy": "none"}}"#
            #expect(try api("POST", "/api/v1/tenants/t1/statistics/jobs", job).status == 400)
            // A valid offline rule that uses each device's own push interval.
            let watch =
                #"{"kind": "offline", "id": "watch", "devices": {"product": "thermo"}, "toleranceMillis": 0, "severity": "minor"}"#
            #expect(try api("POST", "/api/v1/tenants/t1/rules", watch).status == 201)
            #expect(try api("GET", "/healthz").status == 200)

            // What an older version accepted: the overflowing rule in the definition store, and a device whose push
            // interval is Int64.max. Every start used to die restoring them.
            #expect(server.stop(signal: SIGKILL) & 0x7f == SIGKILL)
            let tenantFile = dir.path + "/data/tenants/t1.sqlite"
            let hex = Data(overflow.utf8).map { String(format: "%02x", $0) }.joined()
            let sql = """
                INSERT INTO definitions(kind, id, body) VALUES ('alarm-rule', 'o', X'\(hex)');
                UPDATE devices SET push_interval_ms = 9223372036854775807 WHERE uid = 'd-1';
                """
            let sqlite = try ChildProcess(["/usr/bin/sqlite3", tenantFile, sql])
            #expect(sqlite.wait() == 0)

            server = try iotd.start()
            defer { server.stop(signal: SIGTERM) }
            let rules = try api("GET", "/api/v1/tenants/t1/rules").text
            #expect(rules.contains(#""watch""#) && !rules.contains(#""id":"o""#), "\(rules)")
            let metrics = try LoopbackHTTPClient(port: apiPort).request("GET", "/metrics").text
            #expect(metrics.contains(#"iot_definitions_quarantined{kind="alarm-rule"} 1"#), "\(metrics)")
            // A sample of the device with the huge interval goes through the offline rule without a trap.
            let token = try iotd.issueToken(tenant: "t1", device: "d-1")
            let posted = try LoopbackHTTPClient(port: httpPort).request(
                "POST", "/api/v1/devices/d-1/telemetry",
                headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                body: Array(#"{"temp": 21}"#.utf8))
            #expect(posted.status == 200, "\(posted.text)")
            #expect(try api("GET", "/healthz").status == 200)
        }
    }
}
