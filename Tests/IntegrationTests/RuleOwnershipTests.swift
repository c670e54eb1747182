import Foundation
import IoTCore
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 24, item 5: two `iotd` on one real PostgreSQL and Redis. A device whose messages reach both instances has
/// its alarm rule evaluated on one of them (its owner by hash): a debounce of three counts points posted to
/// either. When the owner is killed, the other takes the device over with the state saved last, so the count
/// continues there. A rule or statistics job created or removed through one instance's API is created or removed
/// on the other, and a script parser saved on one is registered on the other.
@Suite(.serialized) struct RuleOwnershipTests {
    @Test func aDevicesRuleRunsOnOneInstanceAndContinuesOnTheOtherWhenItDies() async throws {
        try await onOwnThread { try Self.run() }
    }

    static func run() throws {
        let pg = try PostgresServer()
        defer { pg.stop() }
        let redis = try RedisServer()
        defer { redis.stop() }
        let devices = (0..<20).map { "      - { uid: d-\($0), product: meter }" }.joined(separator: "\n")
        let instances = (1...2).map { IotdProcess("iotd-owner-\($0)") }
        for (i, iotd) in instances.enumerated() {
            try iotd.configure(
                iotd.preamble(logLevel: "warning")
                    + """
                    storage: { postgres: { url: "\(pg.url)", schemaPrefix: own } }
                    cluster: { instanceID: i\(i + 1), redis: { url: "\(redis.url)" } }
                    tenants:
                      - id: acme
                        products: [{ id: meter, signals: [{ name: v }] }]
                        devices:
                    \(devices)
                        rules:
                          - { kind: range, id: high, devices: { product: meter }, signal: v, max: 50, alarmWhen: outside, severity: major, debounce: { count: 3 }, hysteresis: 0 }
                    """)
        }
        for iotd in instances { try iotd.start() }
        defer { for iotd in instances { iotd.stop(signal: SIGKILL) } }

        func live(_ via: IotdProcess) throws -> Int {
            let r = try via.api("GET", "/api/v1/cluster")
            let json = try JSONSerialization.jsonObject(with: Data(r.text.utf8)) as? [String: Any]
            return (json?["instances"] as? [[String: Any]] ?? []).filter { $0["alive"] as? Bool == true }.count
        }
        try eventually("both instances see each other", seconds: 20) {
            try live(instances[0]) == 2 && live(instances[1]) == 2
        }
        // A rule created through one instance's API is on the other at once, and so is its removal.
        func rules(_ via: IotdProcess) throws -> String { try via.api("GET", "/api/v1/tenants/acme/rules").text }
        let created = try instances[0].api(
            "POST", "/api/v1/tenants/acme/rules",
            #"{"kind": "range", "id": "from-api", "devices": {"product": "meter"}, "signal": "v", "max": 1000, "alarmWhen": "outside", "severity": "minor", "debounce": {"count": 1}, "hysteresis": 0}"#
        )
        #expect(created.status == 201, "\(created.text)")
        try eventually("the second instance has the rule", seconds: 5) { try rules(instances[1]).contains("from-api") }
        #expect(try instances[0].api("DELETE", "/api/v1/tenants/acme/rules/from-api").status == 204)
        try eventually("the second instance removed it", seconds: 5) { try !rules(instances[1]).contains("from-api") }
        // So is a statistics job.
        func jobs(_ via: IotdProcess) throws -> String {
            try via.api("GET", "/api/v1/tenants/acme/statistics/jobs").text
        }
        let job = try instances[1].api(
            "POST", "/api/v1/tenants/acme/statistics/jobs",
            #"{"id": "hourly", "cron": "0 * * * *", "leadMillis": 3600000, "parameters": [{"name": "peak", "device": "d-0", "signal": "v", "reducer": "max"}]}"#
        )
        #expect(job.status == 201, "\(job.text)")
        try eventually("the first instance has the job", seconds: 5) { try jobs(instances[0]).contains("hourly") }
        #expect(try instances[1].api("DELETE", "/api/v1/tenants/acme/statistics/jobs/hourly").status == 204)
        try eventually("the first instance removed the job", seconds: 5) { try !jobs(instances[0]).contains("hourly") }
        // And a script parser: a product on the second instance may name it once it is registered there.
        let parser = try JSONSerialization.data(withJSONObject: [
            "name": "semicolon", "language": "lua",
            "source": "function parse(msg)\n  return { { values = { v = tonumber(msg.payload) } } }\nend\n",
        ])
        #expect(try instances[0].api("POST", "/api/v1/parsers", String(decoding: parser, as: UTF8.self)).status == 201)
        var product = (status: 0, text: "")
        try? eventually("the second instance registered the parser", seconds: 5) {
            product = try instances[1].api(
                "POST", "/api/v1/tenants/acme/products",
                #"{"id": "legacy", "parser": "semicolon", "signals": [{"name": "v"}]}"#)
            return product.status == 201
        }
        #expect(product.status == 201, "\(product.text)")

        // A device the second instance evaluates (the same hash every instance computes).
        let ownership = ClusterOwnership(instance: "i1", live: ["i1", "i2"])
        let device = try #require(
            (0..<20).map { "d-\($0)" }.first { ownership.owner(tenant: "acme", key: $0) == "i2" })
        let token = try instances[0].issueToken(tenant: "acme", device: device)
        func post(_ iotd: IotdProcess, _ value: Int) throws {
            let r = try LoopbackHTTPClient(port: iotd.httpPort).request(
                "POST", "/api/v1/devices/\(device)/telemetry",
                headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                body: Array(#"{"v": \#(value)}"#.utf8))
            #expect(r.status == 200, "\(r.text)")
        }
        func alarms() throws -> [[String: Any]] {
            let r = try instances[0].api("GET", "/api/v1/tenants/acme/alarms?originator=\(device)")
            return (try? JSONSerialization.jsonObject(with: Data(r.text.utf8)) as? [[String: Any]]) ?? []
        }
        usleep(1_000_000)  // both engines have their ownership and the relays listen

        // Three points over the limit, two to the first instance and one to the second: counted on one.
        try post(instances[0], 90)
        try post(instances[1], 91)
        try post(instances[0], 92)
        try eventually("the owner raised the alarm", seconds: 10) { try alarms().count == 1 }
        usleep(1_000_000)
        let raised = try alarms()
        #expect(raised.count == 1 && raised.first?["active"] as? Bool == true, "one alarm: \(raised)")
        #expect(raised.first?["occurrences"] as? Int == 1, "raised once, by one instance: \(raised)")

        // Back under the limit (cleared), then two points over it: the owner's count is 2, saved within about
        // a second. The owner is killed.
        try post(instances[0], 10)
        try eventually("cleared", seconds: 10) { try alarms().first?["active"] as? Bool == false }
        try post(instances[0], 93)
        try post(instances[1], 94)
        usleep(2_500_000)
        instances[1].stop(signal: SIGKILL)
        let killed = Date()
        try eventually("the first instance sees the second gone", seconds: 10) { try live(instances[0]) == 1 }
        usleep(1_000_000)  // it loads the device's state
        print("ownership moved within \(String(format: "%.1f", Date().timeIntervalSince(killed))) s of the kill")
        // One more point over the limit: the third of the count the dead owner had saved.
        try post(instances[0], 95)
        try eventually("the survivor raised the alarm again with the saved count", seconds: 10) {
            try alarms().first?["active"] as? Bool == true
        }
        let final = try alarms()
        #expect(final.count == 1, "the same alarm, active again: \(final)")
    }
}
