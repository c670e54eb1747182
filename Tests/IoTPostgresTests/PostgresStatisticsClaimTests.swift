import IoTCore
import IoTPostgres
import IoTRules
import IoTTestSupport
import IoTTesting
import Logging
import Testing

/// Issue 24, item 5: two instances that schedule the same statistics job on one PostgreSQL run each fire once.
@Suite struct PostgresStatisticsClaimTests {
    @Test func twoSchedulersOnOneDatabaseRunEachFireOnce() async throws {
        try await withPostgresServer { server in
            try await withStorage(on: server) { storage in
                let tenant: TenantID = "t"
                let points = PostgresPointStore(storage: storage)
                try await points.write(
                    PointBatch(
                        tenant: tenant,
                        points: (0..<10).map {
                            Point(
                                device: "m", signal: "kwh", time: 1_700_000_000_000 + Int64($0) * 600_000,
                                value: .number(Double($0)))
                        }, journalSequence: 1))
                let clock = ManualClock(now: 1_700_000_000_000)
                let job = StatisticsJob(
                    id: "every-minute", cron: try CronExpression("* * * * *"), leadMillis: 60_000,
                    parameters: [.init(name: "n", device: "m", signal: "kwh", reducer: .count)],
                    catchUp: .all(max: 1_000))
                var logger = Logger(label: "test")
                logger.logLevel = .error
                let schedulers = ["a", "b"].map { instance in
                    StatisticsScheduler(
                        clock: clock, pointStore: points,
                        statisticsStore: PostgresStatisticsStore(storage: storage, instanceID: instance), logger: logger
                    )
                }
                for s in schedulers { try await s.add(job, tenant: tenant) }
                clock.advance(byMillis: 30 * 60_000)
                // Both run what is due at the same time.
                await withTaskGroup(of: Void.self) { group in
                    for s in schedulers { group.addTask { await s.runDue() } }
                }
                var ran = 0
                for s in schedulers { ran += await s.completedFireCount }
                let stored = try await PostgresStatisticsStore(storage: storage).results(
                    .tenant(tenant), jobID: job.id, from: 0, to: .max)
                #expect(stored.count == 30, "thirty minutes, thirty fires")
                #expect(ran == stored.count, "each fire ran once across the two instances: \(ran) runs")
                #expect(await schedulers[0].failedFireCount + schedulers[1].failedFireCount == 0)

                // A claim is taken once.
                let store = PostgresStatisticsStore(storage: storage, instanceID: "c")
                #expect(try await store.claimFire(.tenant(tenant), jobID: "other", fireTime: 1) == true)
                #expect(try await store.claimFire(.tenant(tenant), jobID: "other", fireTime: 1) == false)
                #expect(try await store.claimFire(.tenant(tenant), jobID: "other", fireTime: 2) == true)
            }
        }
    }

    /// An instance that claimed a fire and died before storing it: once the claim's lease lapsed, another
    /// scheduler takes the fire over when it looks again; a fire whose claimer stored it is not run again.
    @Test func aFireWhoseClaimerDiedIsTakenOverAfterTheLease() async throws {
        try await withPostgresServer { server in
            try await withStorage(on: server) { storage in
                let tenant: TenantID = "t"
                let points = PostgresPointStore(storage: storage)
                let start: Int64 = 1_700_000_040_000  // a whole minute
                try await points.write(
                    PointBatch(
                        tenant: tenant,
                        points: [Point(device: "m", signal: "kwh", time: start + 1_000, value: .number(1))],
                        journalSequence: 1))
                let job = StatisticsJob(
                    id: "every-minute", cron: try CronExpression("* * * * *"), leadMillis: 60_000,
                    parameters: [.init(name: "n", device: "m", signal: "kwh", reducer: .count)])
                let dead = PostgresStatisticsStore(storage: storage, instanceID: "dead", claimLease: .seconds(1))
                let alive = PostgresStatisticsStore(storage: storage, instanceID: "alive", claimLease: .seconds(1))
                // "dead" claims the first fire and never stores it; "alive" claims and stores the second.
                #expect(try await dead.claimFire(.tenant(tenant), jobID: job.id, fireTime: start + 60_000))
                #expect(try await alive.claimFire(.tenant(tenant), jobID: job.id, fireTime: start + 120_000))
                try await alive.save(
                    .tenant(tenant),
                    StatisticsResult(
                        jobID: job.id, fireTime: start + 120_000, windowStart: start + 60_000,
                        windowEnd: start + 120_000, values: ["n": .number(0)]))

                let clock = ManualClock(now: start)
                var logger = Logger(label: "test")
                logger.logLevel = .error
                let scheduler = StatisticsScheduler(
                    clock: clock, pointStore: points,
                    statisticsStore: PostgresStatisticsStore(
                        storage: storage, instanceID: "b", claimLease: .seconds(1)),
                    claimRecheck: .seconds(5), logger: logger)
                try await scheduler.add(job, tenant: tenant)
                clock.advance(byMillis: 120_000)
                await scheduler.runDue()
                #expect(await scheduler.completedFireCount == 0, "both fires are claimed elsewhere")
                // The lease (server time) lapses; the scheduler looks again.
                try await Task.sleep(for: .milliseconds(1_200))
                clock.advance(byMillis: 5_000)
                await scheduler.runDue()
                #expect(await scheduler.completedFireCount == 1, "the dead claimer's fire, not the stored one")
                let stored = try await alive.results(.tenant(tenant), jobID: job.id, from: 0, to: .max)
                #expect(stored.map(\.fireTime) == [start + 60_000, start + 120_000])
                #expect(stored.first?.values["n"] == .number(1))
                #expect(stored.last?.values["n"] == .number(0), "the stored fire was not run again")
                // Looked at once: a later pass does nothing more.
                clock.advance(byMillis: 5_000)
                await scheduler.runDue()
                #expect(await scheduler.completedFireCount == 1)
            }
        }
    }
}
