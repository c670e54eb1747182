import IoTCore
import IoTRules
import IoTTesting
import Testing

@Suite("Range rules")
struct RangeRuleTests {
    func hot(_ debounce: Debounce = .count(1), hysteresis: Double = 0, devices: DeviceSelector = .device("pump-1"))
        -> AlarmRule
    {
        .range(
            RangeRule(
                id: "hot", devices: devices, signal: "temp", max: 80, alarmWhen: .outside,
                severity: .major, debounce: debounce, hysteresis: hysteresis))
    }

    @Test func normalSamplesProduceNothing() async throws {
        let h = RuleHarness()
        try await h.add(hot())
        for v in [20.0, 50, 79.9, 80] { await h.feed(device: "pump-1", signal: "temp", v) }
        #expect(await h.events.isEmpty)
        #expect(await h.openAlarms.isEmpty)
        #expect(try await h.storedAlarms().isEmpty)
    }

    @Test func debounceByCount() async throws {
        let h = RuleHarness()
        try await h.add(hot(.count(3)))
        await h.feed(device: "pump-1", signal: "temp", 85)
        await h.feed(device: "pump-1", signal: "temp", 86)
        await h.feed(device: "pump-1", signal: "temp", 70)  // resets the count
        await h.feed(device: "pump-1", signal: "temp", 85)
        await h.feed(device: "pump-1", signal: "temp", 85)
        #expect(await h.events.isEmpty)
        await h.feed(device: "pump-1", signal: "temp", 90)
        let events = await h.events
        #expect(events.map(\.kind) == [.raised])
        #expect(events.first?.alarm.lastValue == .number(90))
        #expect(events.first?.alarm.severity == .major)
        #expect(try await h.storedAlarms(AlarmQuery(open: true)).count == 1)
    }

    @Test func debounceByDurationOnSamples() async throws {
        let h = RuleHarness()
        try await h.add(hot(.duration(millis: 60_000)))
        await h.feed(device: "pump-1", signal: "temp", 85)
        await h.advance(byMillis: 30_000)
        await h.feed(device: "pump-1", signal: "temp", 70)  // breaks the run: the timer must not raise
        await h.advance(byMillis: 40_000)
        #expect(await h.events.isEmpty)
        await h.feed(device: "pump-1", signal: "temp", 85)
        await h.advance(byMillis: 59_000)
        #expect(await h.events.isEmpty)
        await h.advance(byMillis: 1_000)
        await h.feed(device: "pump-1", signal: "temp", 86)
        #expect(await h.events.map(\.kind) == [.raised])
    }

    @Test func debounceByDurationOnTimer() async throws {
        let h = RuleHarness()
        try await h.add(hot(.duration(millis: 60_000)))
        let t0 = h.clock.now()
        await h.feed(device: "pump-1", signal: "temp", 85)
        await h.advance(byMillis: 120_000)  // no further sample: the value still holds
        let events = await h.events
        #expect(events.map(\.kind) == [.raised])
        #expect(events.first?.alarm.startTime == t0 + 60_000)
    }

    @Test func hysteresisHoldsUntilValueMovesBackPastIt() async throws {
        let h = RuleHarness()
        try await h.add(hot(hysteresis: 2))
        await h.feed(device: "pump-1", signal: "temp", 85)
        await h.feed(device: "pump-1", signal: "temp", 79)  // inside the band: still active
        #expect(await h.events.map(\.kind) == [.raised])
        await h.feed(device: "pump-1", signal: "temp", 78)
        let events = await h.events
        #expect(events.map(\.kind) == [.raised, .cleared])
        #expect(events.last?.alarm.active == false)
        #expect(events.last?.alarm.clearTime == h.clock.now())
    }

    @Test func flappingAroundTheBoundDoesNotFlapTheAlarm() async throws {
        let h = RuleHarness()
        try await h.add(hot(hysteresis: 3))
        for v in [81.0, 79, 81, 78, 81, 79, 80.5] { await h.feed(device: "pump-1", signal: "temp", v) }
        #expect(await h.events.map(\.kind) == [.raised])
        let alarm = try #require(await h.openAlarms.first)
        #expect(alarm.occurrences == 4)  // the raise and three repeats above 80 (81, 81, 80.5)
        #expect(alarm.lastValue == .number(80.5))
    }

    @Test func flappingWithoutHysteresisReusesTheUnacknowledgedAlarm() async throws {
        let h = RuleHarness()
        try await h.add(hot())
        for v in [81.0, 79, 81, 79] { await h.feed(device: "pump-1", signal: "temp", v) }
        let events = await h.events
        #expect(events.map(\.kind) == [.raised, .cleared, .raised, .cleared])
        #expect(Set(events.map(\.alarm.id)).count == 1)
        #expect(events[2].alarm.occurrences == 2)
        #expect(try await h.storedAlarms().count == 1)
    }

    @Test func insideAlarmsWithinBounds() async throws {
        let h = RuleHarness()
        try await h.add(
            .range(
                RangeRule(
                    id: "band", devices: .device("d"), signal: "rpm", min: 10, max: 20,
                    alarmWhen: .inside, severity: .warning, hysteresis: 1)))
        await h.feed(device: "d", signal: "rpm", 5)
        await h.feed(device: "d", signal: "rpm", 15)
        await h.feed(device: "d", signal: "rpm", 20.5)  // within hysteresis of 20
        await h.feed(device: "d", signal: "rpm", 21.5)
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
        #expect(await h.events.first?.alarm.severity == .warning)
    }

    @Test func minOnlyOutsideAndTextIgnored() async throws {
        let h = RuleHarness()
        try await h.add(.range(RangeRule(id: "low", devices: .device("d"), signal: "p", min: 1)))
        await h.feed(device: "d", signal: "p", .text("low"))
        await h.feed(device: "d", signal: "p", 2)
        #expect(await h.events.isEmpty)
        await h.feed(device: "d", signal: "p", 0.5)
        #expect(await h.events.map(\.kind) == [.raised])
    }

    @Test func productSelectorGivesOneAlarmPerDevice() async throws {
        let h = RuleHarness()
        await h.register(Device(uid: "pump-1", product: "pump"))
        await h.register(Device(uid: "pump-2", product: "pump"))
        await h.register(Device(uid: "fan-1", product: "fan"))
        try await h.add(hot(devices: .product("pump")))
        await h.register(Device(uid: "pump-3", product: "pump"))  // registered after the rule
        for d in ["pump-1", "pump-2", "pump-3", "fan-1"] { await h.feed(device: d, signal: "temp", 90) }
        let events = await h.events
        #expect(events.count == 3)
        #expect(Set(events.map(\.alarm.originator)) == ["pump-1", "pump-2", "pump-3"])
    }

    @Test func ruleChangedAndRemovedAtRunTime() async throws {
        let h = RuleHarness()
        try await h.add(hot())
        await h.feed(device: "pump-1", signal: "temp", 85)
        // Raise the threshold: 85 is now normal and clears on the next sample.
        try await h.add(.range(RangeRule(id: "hot", devices: .device("pump-1"), signal: "temp", max: 90)))
        await h.feed(device: "pump-1", signal: "temp", 85)
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
        try await h.remove(ruleID: "hot")
        await h.feed(device: "pump-1", signal: "temp", 99)
        #expect(await h.events.count == 2)
        #expect(await h.engine.rules(tenant: h.tenant).isEmpty)
    }
}
