import Foundation
import IoTCore
import IoTRules
import IoTTesting
import Testing

@Suite("Joint rules")
struct JointRuleTests {
    @Test func closureOverTwoDevices() async throws {
        let h = RuleHarness()
        try await h.add(
            .joint(
                JointRule(
                    id: "muggy",
                    parameters: [
                        .init(name: "t", device: "room-1", signal: "temp"),
                        .init(name: "h", device: "hygro-1", signal: "rh"),
                    ], severity: .minor, originator: "room-1"
                ) { p in
                    guard let t = p["t"] ?? nil, let h = p["h"] ?? nil else { return false }
                    return t > 30 && h > 80
                }))
        await h.feed(device: "room-1", signal: "temp", 31)  // h unknown yet: nil, false
        #expect(await h.events.isEmpty)
        await h.feed(device: "hygro-1", signal: "rh", 85)
        await h.feed(device: "room-1", signal: "temp", 32)  // still true: a repeat, no event
        #expect(await h.events.map(\.kind) == [.raised])
        #expect(await h.events.first?.alarm.originator == "room-1")
        await h.feed(device: "hygro-1", signal: "rh", 60)
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
    }

    /// Issue 20, item 10: a joint rule over every device of a product evaluates each device on its own (its
    /// parameters without a device read that device), raises with that device as the originator, covers a
    /// device registered after the rule, and keeps each device's state across a restart.
    @Test func aRuleOverAProductEvaluatesEachDeviceOnItsOwn() async throws {
        let h = RuleHarness()
        await h.register(Device(uid: "p-1", product: "pump"))
        await h.register(Device(uid: "p-2", product: "pump"))
        await h.register(Device(uid: "x-1", product: "other"))
        try await h.add(
            .joint(
                JointRule(
                    id: "hot-and-fast",
                    parameters: [
                        .init(name: "t", device: "", signal: "temp"),
                        .init(name: "rpm", device: "", signal: "rpm", window: .count(2), reducer: .mean),
                        .init(name: "limit", device: "site", signal: "limit"),
                    ], severity: .major, product: "pump"
                ) { p in
                    guard let t = p["t"] ?? nil, let rpm = p["rpm"] ?? nil, let limit = p["limit"] ?? nil else {
                        return false
                    }
                    return t > limit && rpm > 1000
                }))
        await h.feed(device: "site", signal: "limit", 80)
        await h.feed(device: "p-1", signal: "temp", 90)
        await h.feed(device: "p-2", signal: "rpm", 1500)  // p-2 has no temp yet; p-1 no rpm
        #expect(await h.events.isEmpty, "each device's inputs are its own")
        await h.feed(device: "p-1", signal: "rpm", 1200)
        #expect(await h.events.map(\.alarm.originator) == ["p-1"])
        await h.feed(device: "x-1", signal: "temp", 99)
        await h.feed(device: "x-1", signal: "rpm", 5000)
        #expect(await h.events.count == 1, "a device of another product is not covered")
        // A device registered after the rule is covered too.
        await h.register(Device(uid: "p-3", product: "pump"))
        await h.feed(device: "p-3", signal: "temp", 95)
        await h.feed(device: "p-3", signal: "rpm", 2000)
        #expect(await h.events.map(\.alarm.originator) == ["p-1", "p-3"])
        // The shared parameter moves both: a higher limit clears p-1 and p-3 on their next samples.
        await h.feed(device: "site", signal: "limit", 100)
        #expect(Set(await h.events.filter { $0.kind == .cleared }.map(\.alarm.originator)) == ["p-1", "p-3"])
        // The per-device state survives a restart: p-2 keeps its rpm window and raises with its first temp.
        try await h.restart()
        await h.feed(device: "p-2", signal: "temp", 150)
        let last = await h.events.last
        #expect(last?.alarm.originator == "p-2" && last?.kind == .raised, "\(String(describing: last))")
        let stored = await h.engine.rules(tenant: h.tenant)
        guard case .joint(let rule) = stored.first else {
            Issue.record("the rule is gone: \(stored)")
            return
        }
        #expect(rule.product == "pump" && rule.parameters[0].device.isEmpty)
    }

    @Test func aRuleWithAParameterWithoutDeviceNeedsAProduct() throws {
        let rule = AlarmRule.joint(
            JointRule(id: "r", parameters: [.init(name: "t", device: "", signal: "temp")]) { _ in true })
        #expect(throws: IoTError.self) { try rule.validate() }
    }

    @Test func reducersOverCountWindow() async throws {
        let h = RuleHarness()
        try await h.add(
            .joint(
                JointRule(
                    id: "avg",
                    parameters: [
                        .init(name: "mean", device: "d", signal: "v", window: .count(3), reducer: .mean),
                        .init(name: "delta", device: "d", signal: "v", window: .count(3), reducer: .delta),
                        .init(name: "n", device: "d", signal: "v", window: .count(3), reducer: .count),
                    ]
                ) { p in (p["mean"]! ?? 0) > 10 && (p["delta"]! ?? 0) > 0 && p["n"]! == 3 }))
        for v in [1.0, 20, 5] { await h.feed(device: "d", signal: "v", v) }  // mean 8.7
        #expect(await h.events.isEmpty)
        await h.feed(device: "d", signal: "v", 30)  // window 20, 5, 30: mean 18.3, delta 10
        #expect(await h.events.map(\.kind) == [.raised])
        await h.feed(device: "d", signal: "v", 1)  // 5, 30, 1: delta -4
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
    }

    /// Issue 20, item 10: a joint rule's debounce. With `count(3)` the condition must hold for three evaluations
    /// in a row (one that does not hold starts over); with a duration it must hold that long of clock time, seen
    /// by the timer.
    @Test func debounceByCountAndByDuration() async throws {
        let h = RuleHarness()
        try await h.add(
            .joint(
                JointRule(
                    id: "hot-3", parameters: [.init(name: "t", device: "d", signal: "temp")], debounce: .count(3)
                ) { p in (p["t"]! ?? 0) > 30 }))
        for v in [31.0, 32, 20, 31, 32] { await h.feed(device: "d", signal: "temp", v) }
        #expect(await h.events.isEmpty, "two in a row, then the 20 started it over, then two again")
        await h.feed(device: "d", signal: "temp", 33)
        #expect(await h.events.map(\.kind) == [.raised])
        await h.feed(device: "d", signal: "temp", 10)
        #expect(await h.events.map(\.kind) == [.raised, .cleared])

        let timed = RuleHarness()
        try await timed.add(
            .joint(
                JointRule(
                    id: "hot-1min", parameters: [.init(name: "t", device: "d", signal: "temp")],
                    evaluationIntervalMillis: 10_000, debounce: .duration(millis: 60_000)
                ) { p in (p["t"]! ?? 0) > 30 }))
        let t0 = timed.clock.now()
        await timed.feed(device: "d", signal: "temp", 31)
        await timed.advance(byMillis: 50_000)
        #expect(await timed.events.isEmpty, "held for 50 s of the 60")
        await timed.advance(byMillis: 20_000)
        let raised = await timed.events
        #expect(raised.map(\.kind) == [.raised])
        #expect((raised.first?.alarm.startTime ?? 0) >= t0 + 60_000)
        // The debounce round-trips through the rule's Codable form.
        let rule = JointRule(
            id: "j", parameters: [.init(name: "t", device: "d", signal: "temp")],
            condition: .script(language: "lua", source: "function c(p) return true end", function: "c"),
            debounce: .duration(millis: 5_000))
        let decoded = try JSONDecoder().decode(AlarmRule.self, from: JSONEncoder().encode(AlarmRule.joint(rule)))
        guard case .joint(let back) = decoded, case .duration(let d)? = back.debounce else {
            Issue.record("the debounce did not round-trip: \(decoded)")
            return
        }
        #expect(d == 5_000)
        #expect(throws: IoTError.self) {
            var bad = rule
            bad.debounce = .count(0)
            try bad.validate()
        }
    }

    @Test func noDataForFiveMinutesOnTheTimer() async throws {
        let h = RuleHarness()
        try await h.add(
            .joint(
                JointRule(
                    id: "silent",
                    parameters: [
                        .init(
                            name: "n", device: "sensor-1", signal: "temp", window: .duration(millis: 300_000),
                            reducer: .count)
                    ], severity: .warning, evaluationIntervalMillis: 10_000
                ) { p in p["n"]! == 0 }))
        let t0 = h.clock.now()
        await h.feed(device: "sensor-1", signal: "temp", 20)
        await h.advance(byMillis: 290_000)
        #expect(await h.events.isEmpty)
        await h.advance(byMillis: 20_000)  // 5 min since the sample, found by the 10 s timer
        let raised = await h.events
        #expect(raised.map(\.kind) == [.raised])
        #expect(raised.first?.alarm.startTime == t0 + 300_000)
        await h.feed(device: "sensor-1", signal: "temp", 21)
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
    }

    @Test func doorOpenLongerThanTenMinutes() async throws {
        let h = RuleHarness()
        try await h.add(
            .joint(
                JointRule(
                    id: "door",
                    parameters: [
                        .init(name: "open", device: "door-1", signal: "open", window: .count(1), reducer: .last),
                        .init(
                            name: "changes", device: "door-1", signal: "open", window: .duration(millis: 600_000),
                            reducer: .count),
                    ], severity: .major, evaluationIntervalMillis: 15_000
                ) { p in p["open"]! == 1 && p["changes"]! == 0 }))
        await h.feed(device: "door-1", signal: "open", true)
        await h.advance(byMillis: 300_000)
        await h.feed(device: "door-1", signal: "open", false)  // closed after 5 min
        await h.feed(device: "door-1", signal: "open", true)
        await h.advance(byMillis: 590_000)
        let early = await h.events
        #expect(early.isEmpty, "\(early.map { ($0.kind, $0.time - 1_700_000_000_000, $0.alarm.details ?? "") })")
        await h.advance(byMillis: 30_000)
        #expect(await h.events.map(\.kind) == [.raised])
        await h.feed(device: "door-1", signal: "open", false)
        #expect(await h.events.map(\.kind) == [.raised, .cleared])
    }

    @Test func historyFromThePointStoreCoversADurationWindowAtOnce() async throws {
        let h = RuleHarness()
        try await h.add(
            .joint(
                JointRule(
                    id: "silent",
                    parameters: [
                        .init(
                            name: "n", device: "new-sensor", signal: "x", window: .duration(millis: 60_000),
                            reducer: .count)
                    ], evaluationIntervalMillis: 10_000
                ) { p in p["n"]! == 0 }))
        // The point store covers history, so the window is known at once: no data → alarm on the first tick.
        await h.advance(byMillis: 10_000)
        #expect(await h.events.map(\.kind) == [.raised])
    }

    @Test func scriptCondition() async throws {
        let engine = FakeScriptEngine(functions: [
            "check": { args throws(IoTError) in .bool((args.first?["t"] ?? 0) > 30) },
            "broken": { _ throws(IoTError) in throw IoTError(.script, "rule:x:3: attempt to index a nil value") },
            "weird": { _ throws(IoTError) in .string("yes") },
        ])
        let h = RuleHarness(scriptEngines: [engine])
        try await h.add(
            .joint(
                JointRule(
                    id: "s", parameters: [.init(name: "t", device: "d", signal: "t")],
                    condition: .script(language: "fake", source: "function check(p) … end", function: "check"))))
        try await h.add(
            .joint(
                JointRule(
                    id: "b", parameters: [.init(name: "t", device: "d", signal: "t")],
                    condition: .script(language: "fake", source: "…", function: "broken"))))
        try await h.add(
            .joint(
                JointRule(
                    id: "w", parameters: [.init(name: "t", device: "d", signal: "t")],
                    condition: .script(language: "fake", source: "…", function: "weird"))))
        await h.feed(device: "d", signal: "t", 35)
        await h.feed(device: "d", signal: "t", 36)
        let events = await h.events
        #expect(events.map(\.kind) == [.raised])
        #expect(events.first?.alarm.ruleID == "s")
        #expect(await h.engine.failedEvaluationCount == 4)

        await #expect(throws: IoTError.self) {
            try await h.add(
                .joint(
                    JointRule(
                        id: "x", parameters: [],
                        condition: .script(language: "fake", source: "syntax error", function: "f"))))
        }
        await #expect(throws: IoTError.self) {
            try await h.add(
                .joint(
                    JointRule(id: "y", parameters: [], condition: .script(language: "cobol", source: "", function: "f"))
                ))
        }
    }

    @Test func scriptConditionRoundTripsThroughCodable() throws {
        let rule = JointRule(
            id: "s",
            parameters: [.init(name: "t", device: "d", signal: "t", window: .duration(millis: 5), reducer: .max)],
            condition: .script(language: "lua", source: "return true", function: "f"), evaluationIntervalMillis: 1000)
        let data = try JSONEncoder().encode(rule)
        let back = try JSONDecoder().decode(JointRule.self, from: data)
        #expect(back.parameters == rule.parameters)
        #expect(back.evaluationIntervalMillis == 1000)
        guard case .script(let language, _, let function) = back.condition else {
            Issue.record("not a script")
            return
        }
        #expect(language == "lua" && function == "f")
        let closure = JointRule(id: "c", parameters: []) { _ in true }
        #expect(throws: EncodingError.self) { try JSONEncoder().encode(closure) }
    }
}

@Suite("Rule definitions as configuration")
struct RuleCodingTests {
    @Test func alarmRulesReadFromJSON() throws {
        let json = """
            [{"kind": "range", "id": "hot", "devices": {"product": "pump"}, "signal": "temp", "max": 80,
              "alarmWhen": "outside", "severity": "major", "debounce": {"durationMillis": 60000}, "hysteresis": 2},
             {"kind": "offline", "id": "off", "devices": {"device": "gw"}, "intervalMillis": 10000,
              "toleranceMillis": 0, "severity": "minor"},
             {"kind": "joint", "id": "j", "severity": "info", "evaluationIntervalMillis": 10000,
              "parameters": [{"name": "n", "device": "d", "signal": "s", "window": {"durationMillis": 300000}, "reducer": "count"}],
              "condition": {"language": "lua", "source": "function condition(p) return p.n == 0 end"}}]
            """
        let rules = try JSONDecoder().decode([AlarmRule].self, from: Data(json.utf8))
        #expect(rules.map(\.id) == ["hot", "off", "j"])
        guard case .range(let r) = rules[0], case .joint(let j) = rules[2] else {
            Issue.record("kinds")
            return
        }
        #expect(r.devices == .product("pump") && r.debounce == .duration(millis: 60_000))
        #expect(j.parameters.first?.window == .duration(millis: 300_000))
        let again = try JSONDecoder().decode([AlarmRule].self, from: try JSONEncoder().encode(rules))
        #expect(again.map(\.id) == rules.map(\.id))
    }

    @Test func statisticsJobRoundTrips() throws {
        let job = StatisticsJob(
            id: "daily", cron: try CronExpression("5 0 * * *"),
            timeZone: CronTimeZone(identifier: "Europe/Berlin")!, leadMillis: 86_400_000,
            parameters: [.init(name: "e", device: "m", signal: "kwh", reducer: .delta)],
            calculation: .script(language: "lua", source: "…", function: "calculate"),
            catchUp: .all(max: 7))
        let back = try JSONDecoder().decode(StatisticsJob.self, from: try JSONEncoder().encode(job))
        #expect(back.cron == job.cron && back.timeZone == job.timeZone && back.catchUp == .all(max: 7))
        #expect(back.parameters == job.parameters && back.leadMillis == job.leadMillis)
    }
}
