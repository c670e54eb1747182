import Foundation
import IoTTestSupport
import IoTTesting
import Testing

@Suite(.serialized) struct DefinitionsRestartTests {
    /// Alarm rules and statistics jobs added through the management API come back after a restart of a
    /// real iotd (and a restored rule still raises alarms); one deleted before the restart stays deleted.
    @Test func rulesAndJobsAddedThroughTheAPISurviveARestart() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-definitions")
            try iotd.configure(
                iotd.preamble(logLevel: "warning") + """
                    tenants:
                      - id: lab
                        products:
                          - { id: thermo, signals: [{ name: temp }] }
                        devices:
                          - { uid: t-1, product: thermo }
                    """)
            try iotd.start()
            defer { iotd.stop() }
            let rule = #"""
                {"kind": "range", "id": "overheat", "devices": {"device": "t-1"}, "signal": "temp", "max": 80,
                 "alarmWhen": "outside", "severity": "major", "debounce": {"count": 1}, "hysteresis": 2}
                """#
            let gone =
                #"{"kind": "offline", "id": "gone", "devices": {"device": "t-1"}, "intervalMillis": 60000, "toleranceMillis": 0, "severity": "minor"}"#
            let job = #"""
                {"id": "hourly", "cron": "0 * * * *", "timeZone": "UTC", "leadMillis": 3600000,
                 "parameters": [{"name": "peak", "device": "t-1", "signal": "temp", "reducer": "max"}],
                 "catchUp": {"policy": "none"}}
                """#
            #expect(try iotd.api("POST", "/api/v1/tenants/lab/rules", rule).status == 201)
            #expect(try iotd.api("POST", "/api/v1/tenants/lab/rules", gone).status == 201)
            #expect(try iotd.api("POST", "/api/v1/tenants/lab/statistics/jobs", job).status == 201)
            #expect(try iotd.api("DELETE", "/api/v1/tenants/lab/rules/gone").status == 204)

            #expect(iotd.stop(signal: SIGKILL) & 0x7f == SIGKILL)
            try iotd.start()
            let rules = try iotd.api("GET", "/api/v1/tenants/lab/rules").text
            #expect(rules.contains(#""overheat""#) && !rules.contains(#""gone""#), "\(rules)")
            let jobs = try iotd.api("GET", "/api/v1/tenants/lab/statistics/jobs").text
            #expect(jobs.contains(#""hourly""#), "\(jobs)")

            // The restored rule is live: a hot sample raises its alarm.
            let token = try iotd.issueToken(tenant: "lab", device: "t-1")
            let posted = try LoopbackHTTPClient(port: iotd.httpPort).request(
                "POST", "/api/v1/devices/t-1/telemetry",
                headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                body: Array(#"{"temp": 95}"#.utf8))
            #expect(posted.status == 200, "\(posted.text)")
            var alarms = ""
            for _ in 0..<50 {
                alarms = try iotd.api("GET", "/api/v1/tenants/lab/alarms").text
                if alarms.contains("overheat") { break }
                usleep(100_000)
            }
            #expect(alarms.contains(#""ruleID":"overheat""#), "\(alarms)")
        }
    }
}
