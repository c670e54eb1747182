import IoTCore
import IoTRules
import IoTTesting
import Testing

@Suite("Offline rules")
struct OfflineRuleTests {
    @Test func silentLongerThanPushIntervalPlusTolerance() async throws {
        let h = RuleHarness()
        await h.register(Device(uid: "meter-1", product: "meter", pushIntervalMillis: 60_000))
        try await h.add(.offline(OfflineRule(id: "offline", devices: .product("meter"), toleranceMillis: 30_000)))
        let t0 = h.clock.now()
        await h.feed(device: "meter-1", signal: "kwh", 1)
        await h.advance(byMillis: 60_000)
        await h.feed(device: "meter-1", signal: "kwh", 2)  // on time
        await h.advance(byMillis: 89_000)
        #expect(await h.events.isEmpty)
        await h.advance(byMillis: 1_000)
        let events = await h.events
        #expect(events.map(\.kind) == [.raised])
        #expect(events.first?.alarm.startTime == t0 + 150_000)
        #expect(events.first?.alarm.originator == "meter-1")
        await h.advance(byMillis: 600_000)  // stays raised, no repeats
        #expect(await h.events.count == 1)
        await h.feed(device: "meter-1", signal: "status", .text("back"))
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
        // Silent again: the same (unacknowledged) alarm becomes active again.
        await h.advance(byMillis: 90_000)
        let again = await h.events
        #expect(again.map(\.kind) == [.raised, .cleared, .raised])
        #expect(again[2].alarm.id == again[0].alarm.id)
    }

    @Test func perRuleIntervalAndDeviceNeverSeen() async throws {
        let h = RuleHarness()
        try await h.add(.offline(OfflineRule(id: "gw", devices: .device("gateway"), intervalMillis: 10_000)))
        await h.advance(byMillis: 9_999)
        #expect(await h.events.isEmpty)
        await h.advance(byMillis: 1)  // silent since the rule started watching
        #expect(await h.events.map(\.kind) == [.raised])
    }

    @Test func deviceWithoutIntervalIsNotWatched() async throws {
        let h = RuleHarness()
        await h.register(Device(uid: "x", product: "meter"))
        try await h.add(.offline(OfflineRule(id: "offline", devices: .product("meter"))))
        await h.advance(byMillis: 86_400_000)
        #expect(await h.events.isEmpty)
    }
}
