import IoTCore
import IoTRules
import IoTTesting
import PumpRules
import Testing

@Suite struct PumpRulesTests {
    @Test func overheatNeedsAFullMinute() async throws {
        let h = RuleHarness()
        await h.register(Device(uid: "pump-1", product: "pump"))
        try await h.add(PumpRules.overheat)

        await h.feed(device: "pump-1", signal: "temp", 85)
        await h.advance(byMillis: 30_000)
        await h.feed(device: "pump-1", signal: "temp", 75)  // cooled down: the minute starts over
        await h.feed(device: "pump-1", signal: "temp", 85)
        await h.advance(byMillis: 59_000)
        #expect(await h.events.isEmpty)

        await h.advance(byMillis: 1_000)
        #expect(await h.events.map(\.kind) == [.raised])

        await h.feed(device: "pump-1", signal: "temp", 79)  // within the 2 °C hysteresis
        await h.feed(device: "pump-1", signal: "temp", 78)
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
    }

    @Test func stateSurvivesARestart() async throws {
        let h = RuleHarness()
        await h.register(Device(uid: "pump-1", product: "pump"))
        try await h.add(PumpRules.overheat)
        await h.feed(device: "pump-1", signal: "temp", 85)
        try await h.restart()
        await h.advance(byMillis: 60_000)
        #expect(await h.openAlarms.count == 1)
    }

    @Test func silentFlowSensor() async throws {
        let h = RuleHarness()
        try await h.add(PumpRules.noFlowData(pump: "pump-1"))
        await h.feed(device: "pump-1", signal: "flow", 12.5)
        await h.advance(byMillis: 299_000)
        #expect(await h.events.isEmpty)
        await h.advance(byMillis: 10_000)
        #expect(await h.events.map(\.kind) == [.raised])
    }
}
