import Foundation
import IoTCore
import IoTRules
import IoTTesting
import Logging
import Testing

@Suite("Statistics scheduler")
struct StatisticsTests {
    let tenant: TenantID = "t"
    let points = InMemoryPointStore()
    let stats = InMemoryStatisticsStore()

    func scheduler(_ clock: ManualClock, engines: [any ScriptEngine] = []) -> StatisticsScheduler {
        StatisticsScheduler(
            clock: clock, pointStore: points, statisticsStore: stats, scriptEngines: engines,
            logger: Logger(label: "test"))
    }

    func write(_ samples: [(Int64, Double)], signal: String = "kwh") async throws {
        try await points.write(
            PointBatch(
                tenant: tenant,
                points: samples.map {
                    Point(device: "m", signal: signal, time: $0.0, value: .number($0.1))
                }, journalSequence: 0))
    }

    func hourly(_ catchUp: CatchUpPolicy = .latest, calculation: Calculation? = nil) throws -> StatisticsJob {
        StatisticsJob(
            id: "hourly", cron: try CronExpression("0 * * * *"), leadMillis: 3_600_000,
            parameters: [
                .init(name: "mean", device: "m", signal: "kwh", reducer: .mean),
                .init(name: "n", device: "m", signal: "kwh", reducer: .count),
                .init(name: "used", device: "m", signal: "kwh", reducer: .delta),
                .init(name: "max", device: "m", signal: "kwh", reducer: .max),
                .init(name: "first", device: "m", signal: "kwh", reducer: .first),
                .init(name: "last", device: "m", signal: "kwh", reducer: .raw),
                .init(name: "none", device: "m", signal: "other", reducer: .sum),
            ], calculation: calculation, catchUp: catchUp)
    }

    /// A decoded job may leave out its time zone, calculation and catch-up policy: the initializer's defaults.
    @Test func decodedJobsTakeTheInitializersDefaults() throws {
        let bare = try JSONDecoder().decode(
            StatisticsJob.self,
            from: Data(#"{"id": "j", "cron": "* * * * * *", "leadMillis": 1000, "parameters": []}"#.utf8))
        #expect(bare.timeZone == .utc && bare.catchUp == .latest && bare.calculation == nil)
        let full = try JSONDecoder().decode(
            StatisticsJob.self,
            from: Data(
                #"{"id": "j", "cron": "0 * * * *", "timeZone": "Europe/Berlin", "leadMillis": 1000, "parameters": [], "catchUp": {"policy": "none"}}"#
                    .utf8))
        #expect(full.timeZone == CronTimeZone(identifier: "Europe/Berlin") && full.catchUp == CatchUpPolicy.none)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(StatisticsJob.self, from: Data(#"{"id": "j", "cron": "* * * * *"}"#.utf8))
        }
    }

    @Test func windowIsLeadTimeBeforeTheFire() async throws {
        let clock = ManualClock(now: utc(2024, 1, 1, 0, 30))
        try await write([
            (utc(2024, 1, 1, 0, 0) - 1, 999), (utc(2024, 1, 1, 0, 10), 10), (utc(2024, 1, 1, 0, 20), 20),
            (utc(2024, 1, 1, 0, 59, 59), 30), (utc(2024, 1, 1, 1), 999),
        ])
        let s = scheduler(clock)
        try await s.add(try hourly(), tenant: tenant)
        #expect(await s.nextFireTime == utc(2024, 1, 1, 1))
        clock.advance(to: utc(2024, 1, 1, 1))
        await s.runDue()
        let r = try #require(try await stats.results(.tenant(tenant), jobID: "hourly", from: 0, to: .max).first)
        #expect(r.fireTime == utc(2024, 1, 1, 1) && r.windowStart == utc(2024, 1, 1, 0) && r.windowEnd == r.fireTime)
        #expect(
            r.values == [
                "mean": .number(20), "n": .number(3), "used": .number(20), "max": .number(30),
                "first": .number(10), "last": .number(30),
            ])
        #expect(await s.nextFireTime == utc(2024, 1, 1, 2))
    }

    @Test func closureCalculation() async throws {
        let clock = ManualClock(now: utc(2024, 1, 1, 0, 30))
        try await write([(utc(2024, 1, 1, 0, 10), 100), (utc(2024, 1, 1, 0, 50), 130)])
        let s = scheduler(clock)
        try await s.add(
            StatisticsJob(
                id: "cost", cron: try CronExpression("0 0 * * * *"), leadMillis: 3_600_000,
                parameters: [
                    .init(name: "used", device: "m", signal: "kwh", reducer: .delta)
                ]
            ) { p in ["cost": .number((p["used"]! ?? 0) * 0.25), "unit": .text("EUR")] }, tenant: tenant)
        clock.advance(to: utc(2024, 1, 1, 1))
        await s.runDue()
        let r = try await stats.results(.tenant(tenant), jobID: "cost", from: 0, to: .max)
        #expect(r.map(\.values) == [["cost": .number(7.5), "unit": .text("EUR")]])
    }

    @Test func scriptCalculationAndScriptFailure() async throws {
        let engine = FakeScriptEngine(functions: [
            "calculate": { args throws(IoTError) in
                guard case .object(let o) = args[0], case .array(let raw)? = o["all"] else { return .null }
                return .object(["samples": .number(Double(raw.count)), "ok": .bool(true)])
            },
            "broken": { _ throws(IoTError) in throw IoTError(.script, "statistics:x:1: boom") },
        ])
        let clock = ManualClock(now: utc(2024, 1, 1, 0, 30))
        try await write([(utc(2024, 1, 1, 0, 10), 1), (utc(2024, 1, 1, 0, 20), 2)])
        let s = scheduler(clock, engines: [engine])
        let params: [StatisticsJob.Parameter] = [.init(name: "all", device: "m", signal: "kwh", reducer: .raw)]
        try await s.add(
            StatisticsJob(
                id: "good", cron: try CronExpression("0 * * * *"), leadMillis: 3_600_000, parameters: params,
                calculation: .script(language: "fake", source: "…", function: "calculate")), tenant: tenant)
        try await s.add(
            StatisticsJob(
                id: "bad", cron: try CronExpression("0 * * * *"), leadMillis: 3_600_000, parameters: params,
                calculation: .script(language: "fake", source: "…", function: "broken")), tenant: tenant)
        clock.advance(to: utc(2024, 1, 1, 1))
        await s.runDue()
        #expect(
            try await stats.results(.tenant(tenant), jobID: "good", from: 0, to: .max).map(\.values) == [
                ["samples": .number(2), "ok": .bool(true)]
            ])
        #expect(try await stats.results(.tenant(tenant), jobID: "bad", from: 0, to: .max).isEmpty)
        #expect(await s.failedFireCount == 1)
        #expect(await s.nextFireTime == utc(2024, 1, 1, 2))  // the schedule goes on
    }

    func catchUp(_ policy: CatchUpPolicy) async throws -> [Int64] {
        // Last result at 01:00; the scheduler comes back at 06:10: 02:00 … 06:00 were missed.
        try await stats.save(
            .tenant(tenant),
            StatisticsResult(
                jobID: "hourly", fireTime: utc(2024, 1, 1, 1),
                windowStart: 0, windowEnd: 0, values: [:]))
        let clock = ManualClock(now: utc(2024, 1, 1, 6, 10))
        let s = scheduler(clock)
        try await s.add(try hourly(policy), tenant: tenant)
        await s.runDue()
        return try await stats.results(.tenant(tenant), jobID: "hourly", from: utc(2024, 1, 1, 2), to: .max).map(
            \.fireTime)
    }

    @Test func catchUpNone() async throws {
        #expect(try await catchUp(.none) == [])
    }

    @Test func catchUpLatest() async throws {
        #expect(try await catchUp(.latest) == [utc(2024, 1, 1, 6)])
    }

    @Test func catchUpAllBounded() async throws {
        #expect(try await catchUp(.all(max: 3)) == [utc(2024, 1, 1, 4), utc(2024, 1, 1, 5), utc(2024, 1, 1, 6)])
    }

    @Test func catchUpAllWithinTheBound() async throws {
        #expect(try await catchUp(.all(max: 100)).count == 5)
    }

    @Test func serviceSleepsUntilTheNextFireAndTakesJobsAtRunTime() async throws {
        let clock = ManualClock(now: utc(2024, 1, 1, 0, 59))
        let s = scheduler(clock)
        let task = Task { try await s.run() }
        try await s.add(
            StatisticsJob(id: "a", cron: try CronExpression("0 * * * *"), leadMillis: 60_000, parameters: []),
            tenant: tenant)
        try await waitFor { clock.sleeperCount == 1 }
        clock.advance(to: utc(2024, 1, 1, 1))
        try await waitFor { await s.completedFireCount == 1 }
        #expect(await s.remove(jobID: "a", tenant: tenant))
        #expect(await s.nextFireTime == nil)
        task.cancel()
        try await task.value
    }

    func waitFor(_ condition: @Sendable () async -> Bool) async throws {
        for _ in 0..<10_000 {
            if await condition() { return }
            await Task.yield()
        }
        Issue.record("condition not met")
    }
}
