import IoTCore
import IoTRules
import IoTTesting
import Logging
import Synchronization
import Testing

@Suite("Alarm lifecycle and persisted state")
struct LifecycleTests {
    let hot = AlarmRule.range(
        RangeRule(
            id: "hot", devices: .device("pump-1"), signal: "temp", max: 80,
            debounce: .count(3), hysteresis: 2))

    func raise(_ h: RuleHarness) async {
        for _ in 0..<3 { await h.feed(device: "pump-1", signal: "temp", 90) }
    }

    /// Issue 21, item 5: a handler added to the harness keeps receiving events after `restart()`.
    @Test func aHandlerAddedToTheHarnessSurvivesARestart() async throws {
        final class Kinds: AlarmEventHandler {
            let seen = Mutex<[AlarmEvent.Kind]>([])
            func handle(_ event: AlarmEvent) async { seen.withLock { $0.append(event.kind) } }
        }
        let h = RuleHarness()
        let kinds = Kinds()
        await h.addHandler(kinds)
        try await h.add(hot)
        await raise(h)
        try await h.restart()
        for _ in 0..<3 { await h.feed(device: "pump-1", signal: "temp", 70) }  // below max - hysteresis: clears
        #expect(kinds.seen.withLock { $0 } == [.raised, .cleared])
    }

    /// Issue 21, item 5: the "cleared" notification shows the value that cleared the alarm, and the built-in
    /// texts read well whatever the rule's name ("raised a overweight alarm" before).
    @Test func theClearedNotificationShowsTheValueThatClearedIt() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await raise(h)
        await h.feed(device: "pump-1", signal: "temp", 70)
        let events = await h.takeEvents()
        #expect(events.map(\.kind) == [.raised, .cleared])
        let cleared = try #require(events.last)
        #expect(cleared.alarm.lastValue == .number(70))
        let template = try #require(NotificationTemplate.builtIns.first { $0.id == "alarm_cleared" })
        let body = template.render(
            for: .subjectAndBody, values: AlarmVariables.values(cleared, device: Device(uid: "pump-1", product: "p"))
        )
        .body
        #expect(body.contains("current value 70.0"), "\(body)")
        let raisedTemplate = try #require(NotificationTemplate.builtIns.first { $0.id == "alarm_raised" })
        let raised = raisedTemplate.render(
            for: .subjectAndBody, values: AlarmVariables.values(events[0], device: Device(uid: "pump-1", product: "p"))
        )
        .body
        #expect(raised.hasPrefix("Device pump-1: hot alarm raised at "), "\(raised)")
        #expect(raised.contains("current value 90.0"), "\(raised)")
    }

    @Test func acknowledgeThenClearClosesAndNextRaiseOpensANewAlarm() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await raise(h)
        let first = try #require(await h.openAlarms.first)
        await h.advance(byMillis: 5_000)
        let acked = try await h.acknowledge(first.id)
        #expect(acked.acknowledged && acked.active && acked.ackTime == h.clock.now())
        #expect(try await h.acknowledge(first.id) == acked)  // idempotent, no second event
        await h.feed(device: "pump-1", signal: "temp", 70)  // clears: cleared + acknowledged = closed
        #expect(await h.openAlarms.isEmpty)
        let stored = try #require(try await h.stateStore.alarm(.tenant(h.tenant), id: first.id))
        #expect(!stored.isOpen && stored.clearTime != nil)
        await raise(h)
        let second = try #require(await h.openAlarms.first)
        #expect(second.id != first.id && second.occurrences == 1)
        #expect(await h.events.map(\.kind) == [.raised, .acknowledged, .cleared, .raised])
        #expect(try await h.storedAlarms().count == 2)
    }

    @Test func clearThenAcknowledgeCloses() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await raise(h)
        let id = try #require(await h.openAlarms.first?.id)
        await h.feed(device: "pump-1", signal: "temp", 70)
        #expect(await h.openAlarms.count == 1)  // cleared, not acknowledged: still open
        try await h.acknowledge(id)
        #expect(await h.openAlarms.isEmpty)
        #expect(try await h.storedAlarms(AlarmQuery(open: true)).isEmpty)
    }

    @Test func clearByHandRestartsTheDebounce() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await raise(h)
        let id = try #require(await h.openAlarms.first?.id)
        let cleared = try await h.clear(id)
        #expect(!cleared.active && cleared.clearTime == h.clock.now())
        await h.feed(device: "pump-1", signal: "temp", 90)
        await h.feed(device: "pump-1", signal: "temp", 90)
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
        await h.feed(device: "pump-1", signal: "temp", 90)  // debounce met again: same alarm, active again
        let events = await h.events
        #expect(events.map(\.kind) == [.raised, .cleared, .raised])
        #expect(events[2].alarm.id == id && events[2].alarm.occurrences == 2)
    }

    @Test func unknownAlarmIsNotFound() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await #expect(throws: IoTError.self) { try await h.acknowledge("nope") }
        await raise(h)
        let id = try #require(await h.openAlarms.first?.id)
        let other = AccessScope(tenant: h.tenant, devices: ["pump-2"])
        await #expect(throws: IoTError.self) { try await h.engine.acknowledge(other, alarmID: id) }
    }

    @Test func debounceCounterSurvivesARestart() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await h.feed(device: "pump-1", signal: "temp", 90)
        await h.feed(device: "pump-1", signal: "temp", 90)
        try await h.restart()
        await h.feed(device: "pump-1", signal: "temp", 90)
        #expect(await h.events.map(\.kind) == [.raised])
    }

    @Test func periodicSaveSurvivesACrash() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await h.feed(device: "pump-1", signal: "temp", 90)
        await h.feed(device: "pump-1", signal: "temp", 90)
        await h.advance(byMillis: 1_000)  // the batched save is due
        await h.feed(device: "pump-1", signal: "temp", 70)  // resets, but is not saved before the crash
        try await h.restart(flush: false)
        await h.feed(device: "pump-1", signal: "temp", 90)
        #expect(await h.events.map(\.kind) == [.raised])
    }

    @Test func openAlarmAndHysteresisStateSurviveARestart() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await raise(h)
        await h.feed(device: "pump-1", signal: "temp", 95)
        let before = try #require(await h.openAlarms.first)
        try await h.restart()
        let after = try #require(await h.openAlarms.first)
        #expect(after.id == before.id && after.occurrences == 2 && after.lastValue == .number(95))
        await h.feed(device: "pump-1", signal: "temp", 79)  // within hysteresis: still active
        await h.feed(device: "pump-1", signal: "temp", 77)
        let events = await h.events
        #expect(events.map(\.kind) == [.raised, .cleared])
        #expect(events.last?.alarm.id == before.id)
    }

    @Test func jointWindowsAndOfflineStateSurviveARestart() async throws {
        let h = RuleHarness()
        try await h.add(
            .joint(
                JointRule(
                    id: "sum",
                    parameters: [
                        .init(name: "s", device: "d", signal: "v", window: .count(3), reducer: .sum)
                    ]
                ) { p in (p["s"]! ?? 0) >= 30 }))
        try await h.add(.offline(OfflineRule(id: "off", devices: .device("d"), intervalMillis: 60_000)))
        await h.feed(device: "d", signal: "v", 10)
        await h.feed(device: "d", signal: "v", 10)
        await h.advance(byMillis: 30_000)
        try await h.restart()
        await h.feed(device: "d", signal: "v", 10)
        #expect(await h.events.map(\.kind) == [.raised])
        await h.advance(byMillis: 60_000)  // last seen is kept: offline 60 s after the last sample
        #expect(await h.events.map(\.kind) == [.raised, .raised])
        #expect(await h.events.last?.alarm.ruleID == "off")
    }

    @Test func eventsStreamDeliversStoredEvents() async throws {
        let h = RuleHarness()
        try await h.add(hot)
        await raise(h)
        await h.feed(device: "pump-1", signal: "temp", 10)
        var it = await h.engine.events.makeAsyncIterator()
        let a = await it.next()
        let b = await it.next()
        #expect(a?.kind == .raised && b?.kind == .cleared)
        #expect(try await h.stateStore.alarm(.tenant(h.tenant), id: a!.alarm.id) != nil)
    }
}

@Suite("RuleEngine as a service")
struct RuleEngineServiceTests {
    final class Collector: AlarmEventHandler {
        let events = Mutex<[AlarmEvent]>([])
        func handle(_ event: AlarmEvent) async { events.withLock { $0.append(event) } }
    }

    @Test func runDrivesTimersOnTheInjectedClockAndSavesOnShutdown() async throws {
        let clock = ManualClock(now: 1_000_000)
        let store = InMemoryRuleStateStore()
        let engine = RuleEngine(clock: clock, stateStore: store, logger: Logger(label: "test"))
        let collector = Collector()
        await engine.addHandler(collector)
        try await engine.add(
            .offline(OfflineRule(id: "off", devices: .device("d"), intervalMillis: 5_000)), tenant: "t")
        let task = Task { try await engine.run() }
        for _ in 0..<10_000 where clock.sleeperCount == 0 { await Task.yield() }
        clock.advance(byMillis: 5_000)
        for _ in 0..<10_000 where collector.events.withLock({ $0.isEmpty }) { await Task.yield() }
        #expect(collector.events.withLock { $0.map(\.kind) } == [.raised])
        task.cancel()
        try await task.value
        #expect(try await !store.states(.tenant("t"), ruleID: "off", originators: nil).isEmpty)
    }

    @Test func durationDebounceTimerSurvivesARestart() async throws {
        let h = RuleHarness()
        try await h.add(
            .range(
                RangeRule(
                    id: "hot", devices: .device("d"), signal: "t", max: 1,
                    debounce: .duration(millis: 60_000))))
        await h.feed(device: "d", signal: "t", 5)
        await h.advance(byMillis: 30_000)
        try await h.restart()
        await h.advance(byMillis: 30_000)
        #expect(await h.events.map(\.kind) == [.raised])
    }
}
