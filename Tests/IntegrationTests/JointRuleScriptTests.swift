import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 20, item 10: joint-rule conditions in `iotd serve` run in Lua, JavaScript and Python, end to end:
/// points posted over HTTP raise the alarms their conditions describe, and only those. The Python rule applies
/// to every device of the product.
@Suite(.serialized) struct JointRuleScriptTests {
    @Test func luaJavaScriptAndPythonConditionsRaiseAlarmsEndToEnd() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-joint-rules")
            try iotd.configure(
                iotd.preamble() + """
                    tenants:
                      - id: lab
                        products: [{ id: p, signals: [{ name: a }, { name: b }] }]
                        devices: [{ uid: d, product: p }]
                        rules:
                          - kind: joint
                            id: lua-a-over-b
                            parameters:
                              - { name: a, device: d, signal: a, window: { count: 1 }, reducer: last }
                              - { name: b, device: d, signal: b, window: { count: 1 }, reducer: last }
                            condition: { language: lua, source: "function check(p) return p.a > p.b end", function: check }
                            severity: major
                          - kind: joint
                            id: js-sum-over-10
                            parameters:
                              - { name: a, device: d, signal: a, window: { count: 1 }, reducer: last }
                              - { name: b, device: d, signal: b, window: { count: 1 }, reducer: last }
                            condition: { language: javascript, source: "function check(p) { return p.a + p.b > 10; }", function: check }
                            severity: minor
                          - kind: joint
                            id: py-product-over-20
                            product: p               # every device of product p, each on its own
                            parameters:
                              - { name: a, signal: a, window: { count: 1 }, reducer: last }
                              - { name: b, signal: b, window: { count: 1 }, reducer: last }
                            condition: { language: python, source: "def check(p):\\n    return p['a'] * p['b'] > 20\\n", function: check }
                            severity: minor

                    """)
            try iotd.start(seconds: 30)
            defer { iotd.stop() }
            let token = try iotd.issueToken(tenant: "lab", device: "d")
            let device = try LoopbackHTTPClient(port: iotd.httpPort)
            func post(_ body: String) throws {
                let r = try device.request("POST", "/api/v1/\(token)/telemetry", body: Array(body.utf8))
                #expect(r.status == 200, "\(body): \(r.status) \(r.text)")
            }
            func openAlarms() throws -> Set<String> {
                let text = try iotd.api("GET", "/api/v1/tenants/lab/alarms?open=true").text
                let list = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]] ?? []
                return Set(list.compactMap { $0["ruleID"] as? String })
            }
            func waitFor(_ rules: Set<String>) throws -> Set<String> {
                var open: Set<String> = []
                for _ in 0..<100 {
                    open = try openAlarms()
                    if open == rules { break }
                    usleep(100_000)
                }
                return open
            }
            try post(#"{"a": 1, "b": 2}"#)
            usleep(500_000)
            #expect(try openAlarms().isEmpty, "1 > 2, 1 + 2 > 10 and 1 × 2 > 20 are all false")
            try post(#"{"a": 5, "b": 1}"#)
            #expect(
                try waitFor(["lua-a-over-b"]) == ["lua-a-over-b"],
                "5 > 1 (Lua); 6 > 10 is false (JavaScript), 5 > 20 too (Python)")
            try post(#"{"a": 9, "b": 3}"#)
            let all: Set = ["lua-a-over-b", "js-sum-over-10", "py-product-over-20"]
            #expect(try waitFor(all) == all, "27 > 20 (Python)")
        }
    }
}
