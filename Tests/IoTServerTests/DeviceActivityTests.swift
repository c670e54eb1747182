import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTServer
import IoTTesting
import Testing

/// Issue 23, items 2 and 7: the device listing the console pages through (search, product, online status,
/// `limit`/`offset` with `X-Total-Count`), each device's last activity and online status, and the tenant
/// overview.
@Suite struct DeviceActivityTests {
    @Test(arguments: [false, true])
    func theListingFiltersPagesAndShowsWhoIsOnline(sqlite: Bool) async throws {
        let h = try await ServerHarness(sqlite: sqlite)
        try await h.api { c in
            try await h.seed(c)
            for body in [
                #"{"uid": "t-2", "product": "thermo", "pushIntervalMillis": 10000}"#,
                #"{"uid": "t-3", "product": "thermo", "name": "Boiler room", "tags": {"site": "north"}}"#,
            ] {
                #expect(try await c.send(.post, "/api/v1/tenants/acme/devices", body).status == .created)
            }
            for uid in ["t-1", "t-2"] {
                let token = try #require(
                    try await c.send(.post, "/api/v1/tenants/acme/devices/\(uid)/tokens").object["token"] as? String)
                #expect(try await h.deviceSend(token: token, #"{"ts": 5000, "temp": 1, "on": true}"#) == .ok)
            }
            try await h.drain()
            let heard = h.clock.now()

            func listed(_ query: String) async throws -> (uids: [String], total: String?, items: [[String: Any]]) {
                let r = try await c.get("/api/v1/tenants/acme/devices" + query)
                #expect(r.status == .ok, "\(query): \(r.text)")
                let items = try #require(try JSONSerialization.jsonObject(with: Data(r.text.utf8)) as? [[String: Any]])
                return (items.compactMap { $0["uid"] as? String }, r.headers[HTTPField.Name("X-Total-Count")!], items)
            }
            let all = try await listed("")
            #expect(all.uids == ["t-1", "t-2", "t-3"] && all.total == "3")
            #expect(all.items.map { $0["online"] as? Bool } == [true, true, false])
            #expect(all.items.map { ($0["lastActivity"] as? NSNumber)?.int64Value } == [heard, heard, nil])
            #expect(all.items[2]["name"] as? String == "Boiler room", "the device's own fields stay")

            // t-2 pushes every 10 s: offline after 30 s (three intervals); t-1 has the default 600 s.
            h.clock.advance(byMillis: 31_000)
            #expect(try await listed("?status=online").uids == ["t-1"])
            #expect(try await listed("?status=offline").uids == ["t-2", "t-3"])
            #expect(try await listed("?q=NORTH").uids == ["t-3"], "a tag, any case")
            #expect(try await listed("?q=boiler").uids == ["t-3"], "the name")
            #expect(try await listed("?q=t-&product=thermo&status=offline").uids == ["t-2", "t-3"])
            let page = try await listed("?limit=1&offset=1")
            #expect(page.uids == ["t-2"] && page.total == "3")
            #expect(try await listed("?product=ghost").uids == [])
            let one = try await c.json("/api/v1/tenants/acme/devices/t-2") as? [String: Any]
            #expect(one?["online"] as? Bool == false && (one?["lastActivity"] as? NSNumber)?.int64Value == heard)
            for bad in ["status=away", "limit=0", "offset=-1", "limit=x"] {
                let r = try await c.get("/api/v1/tenants/acme/devices?\(bad)")
                #expect(r.status == .badRequest && r.text.contains(bad.split(separator: "=")[0]), "\(bad): \(r.text)")
            }

            let overview = try #require(try await c.json("/api/v1/tenants/acme/overview") as? [String: Any])
            #expect(overview["devices"] as? Int == 3 && overview["products"] as? Int == 1)
            #expect(overview["online"] as? Int == 1 && overview["offline"] as? Int == 2)
            #expect(overview["neverSeen"] as? Int == 1)
            #expect(try await c.get("/api/v1/tenants/nope/overview").status == .notFound)
        }
        await h.stop()
    }

    /// After a restart a device's last activity is its newest stored point until it is heard from again; the
    /// rate counts the points of the last ten full seconds.
    @Test func activityStartsFromTheStoredPointsAndCountsTheRate() async throws {
        let points = InMemoryPointStore()
        let clock = ManualClock()
        try await points.write(
            PointBatch(
                tenant: "acme",
                points: [
                    Point(device: "old", signal: "s", time: clock.now() - 3_600_000, value: .number(1)),
                    Point(device: "old", signal: "t", time: clock.now() - 700_000, value: .number(1)),
                    Point(device: "new", signal: "s", time: clock.now() - 1_000, value: .number(1)),
                ], journalSequence: 0))
        let activity = DeviceActivity(points: points, clock: clock)
        let device = { (uid: String) in Device(uid: uid, product: "p", createdAt: 0) }
        await activity.pointsCommitted(
            PointBatch(
                tenant: "acme",
                points: (0..<50).map { Point(device: "live", signal: "s", time: Int64($0), value: .number(1)) },
                journalSequence: 1))
        let last = try await activity.lastActivity("acme")
        #expect(last == ["old": clock.now() - 700_000, "new": clock.now() - 1_000, "live": clock.now()])
        let now = clock.now()
        #expect(!activity.status(of: device("old"), lastActivity: last["old"], now: now).online, "700 s > 600 s")
        #expect(activity.status(of: device("new"), lastActivity: last["new"], now: now).online)
        #expect(activity.pointsPerSecond("acme") == 0, "the current second is still filling")
        clock.advance(byMillis: 1_000)
        #expect(activity.pointsPerSecond("acme") == 5, "50 points over ten seconds")
        clock.advance(byMillis: 10_000)
        #expect(activity.pointsPerSecond("acme") == 0)
        #expect(activity.pointsPerSecond("other") == 0)

        // A deleted tenant is forgotten: a tenant of the same name starts again from its own store.
        _ = try await points.deletePoints(.tenant("acme"), before: .max)
        activity.forget("acme")
        #expect(try await activity.lastActivity("acme") == [:], "neither \"live\" nor the stored devices")
    }
}
