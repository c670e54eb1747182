import Foundation
import IoTCore
import IoTTestSupport
import IoTTesting
import PostgresNIO
import Testing

@testable import IoTPostgres

/// Issue 24, item 8: the PostgreSQL point store appends each batch's minute partials and builds a minute's and an
/// hour's rollup rows once they are closed, instead of updating them with every batch. Aggregates stay exact in
/// every state: all open, all closed, closing while writes run on two instances, and a schema of version 1
/// (every row written at once) upgraded.
@Suite struct PostgresRollupClosingTests {
    static let hour: Int64 = 3_600_000

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The point store conformance suite with all of its data open (a delay of a century) and with its data
    /// closing between the first batch and the rest (the suite writes shuffled points over five hours from
    /// 1_700_000_123_457; the delay closes the minutes and hours before the middle of the third hour: later points
    /// into those update their rows, the others stay open).
    @Test func theConformanceSuiteHoldsWithEverythingOpenAndWithClosingMidway() async throws {
        let conformanceStart: Int64 = 1_700_000_123_457
        let midway = Duration.milliseconds(Self.nowMillis() - (conformanceStart + 2 * Self.hour + Self.hour / 2))
        try await withPostgresServer { server in
            for delay in [Duration.seconds(100 * 365 * 86_400), midway] {
                try await runConformance(PointStoreConformance.checks, on: server) {
                    PostgresPointStore(storage: $0, configuration: .init(rollupDelay: delay))
                }
            }
        }
    }

    /// Two instances write the same series into four hours in time order while they close those hours one by one:
    /// no part a write appended is missed by the closing of its minute (the rollup lock), and no write into a
    /// closed minute is counted twice. Afterwards every row equals its points, and no minute or hour row exists
    /// before it was closed.
    @Test func closingWhileTwoInstancesWriteKeepsEveryMinuteAndHourExact() async throws {
        // Hours ahead of the clock: open under the default delay until closed here.
        let base = (Self.nowMillis() / Self.hour + 10) * Self.hour
        let tenant: TenantID = "race"
        let series = (0..<4).map { SeriesKey(device: "d\($0 % 2)", signal: "s\($0)") }
        let batches = 40
        let perBatch = 50
        // Writer w writes batch b at times that advance through the four hours; the two writers interleave.
        func batch(_ w: Int, _ b: Int) -> [Point] {
            (0..<perBatch).flatMap { i -> [Point] in
                let t = base + Int64(b * perBatch + i) * (4 * Self.hour / Int64(batches * perBatch)) + Int64(w)
                return series.map { Point(device: $0.device, signal: $0.signal, time: t, value: .number(Double(i))) }
            }
        }
        try await withPostgresServer { server in
            try await withStorage(on: server) { one in
                try await withStorage(on: server, prefix: one.configuration.schemaPrefix) { two in
                    let a = PostgresPointStore(storage: one, configuration: .init(instanceID: "a"))
                    let b = PostgresPointStore(storage: two, configuration: .init(instanceID: "b"))
                    // The first write closes the minutes before the clock's (none of this data).
                    try await a.write(PointBatch(tenant: tenant, points: batch(0, 0), journalSequence: 1))
                    #expect(
                        try await rowCount(one, tenant, "rollup_1h") + rowCount(one, tenant, "rollup_1m") == 0,
                        "no minute or hour row while all are open")
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (w, store) in [(0, a), (1, b)] {
                            group.addTask {
                                for n in (w == 0 ? 1 : 0)..<batches {
                                    try await store.write(
                                        PointBatch(tenant: tenant, points: batch(w, n), journalSequence: UInt64(n + 2)))
                                }
                            }
                        }
                        group.addTask {
                            for k in 1...4 {
                                try await Task.sleep(for: .milliseconds(40))
                                try await (k % 2 == 0 ? a : b).closeRollups(
                                    tenant: tenant, before: base + Int64(k) * Self.hour)
                            }
                        }
                        try await group.waitForAll()
                    }
                    try await a.closeRollups(tenant: tenant, before: base + 5 * Self.hour)
                    #expect(try await rowCount(one, tenant, "rollup_1h") == 4 * series.count)
                    // What was written, by hour.
                    var expected: [SeriesKey: [Int64: (count: Int, sum: Double)]] = [:]
                    for w in 0..<2 {
                        for n in 0..<batches {
                            for p in batch(w, n) {
                                let h = p.time / Self.hour * Self.hour
                                let old = expected[p.series, default: [:]][h] ?? (0, 0)
                                expected[p.series, default: [:]][h] = (old.count + 1, old.sum + p.value.numericValue!)
                            }
                        }
                    }
                    for key in series {
                        for store in [a, b] {
                            let hours = try await store.aggregate(
                                .tenant(tenant), series: key, from: base, to: base + 4 * Self.hour,
                                bucketMillis: Self.hour)
                            #expect(hours.map(\.start) == (0..<4).map { base + Int64($0) * Self.hour })
                            for bucket in hours {
                                let want = expected[key]?[bucket.start]
                                #expect(bucket.count == want?.count, "\(key) hour \(bucket.start): count")
                                #expect(bucket.sum == want?.sum, "\(key) hour \(bucket.start): sum")
                            }
                        }
                    }
                    // The minute and hour rows and the parts, against their points.
                    #expect(try await mismatchedRows(one, tenant) == 0)
                }
            }
        }
    }

    /// A late point into a closed minute and hour updates their rows, an overwrite recomputes them (an open
    /// minute's parts too), retention trims them; a schema written by version 1 (every row exact) keeps its rows,
    /// its minutes closed up to the last minute row.
    @Test func closedMinutesTakeLatePointsOverwritesRetentionAndAVersionOneSchema() async throws {
        let base = (Self.nowMillis() / Self.hour + 10) * Self.hour
        let key = SeriesKey(device: "d", signal: "s")
        func p(_ t: Int64, _ v: Double) -> Point { Point(device: "d", signal: "s", time: base + t, value: .number(v)) }
        try await withPostgresServer { server in
            let prefix = try await withStorage(on: server) { storage in
                let store = PostgresPointStore(storage: storage)
                try await store.write(
                    PointBatch(
                        tenant: "t", points: [p(1_000, 1), p(61_000, 2), p(Self.hour + 5, 4)], journalSequence: 0))
                #expect(try await store.closeRollups(tenant: "t", before: base + Self.hour) == 2)
                #expect(try await store.closeRollups(tenant: "t", before: base + Self.hour) == 0, "closed once")
                // Late into the closed hour, new into the open one; an overwrite in each.
                try await store.write(
                    PointBatch(tenant: "t", points: [p(2_000, 8), p(Self.hour + 6, 16)], journalSequence: 0))
                try await store.write(
                    PointBatch(tenant: "t", points: [p(61_000, 32), p(Self.hour + 5, 64)], journalSequence: 0))
                func hours() async throws -> [(Int, Double?)] {
                    try await store.aggregate(
                        .tenant("t"), series: key, from: base, to: base + 2 * Self.hour, bucketMillis: Self.hour
                    ).map { ($0.count, $0.sum) }
                }
                var got = try await hours()
                #expect(got.map(\.0) == [3, 2] && got.map(\.1) == [41, 80])
                #expect(try await mismatchedRows(storage, "t") == 0)
                // Retention through the middle of the closed hour and of the open one.
                #expect(try await store.deletePoints(.tenant("t"), before: base + 1_500) == 1)
                got = try await hours()
                #expect(got.map(\.0) == [2, 2] && got.map(\.1) == [40, 80])
                #expect(try await mismatchedRows(storage, "t") == 0)

                // Version 1: its hour rows were all exact. The next start sets the watermark after the last one.
                try await store.closeRollups(tenant: "t", before: base + 2 * Self.hour)
                let schema = try storage.schema(of: "t")
                for sql in [
                    "DROP TABLE \(schema).rollup_state", "DROP TABLE \(schema).rollup_parts",
                    "UPDATE \(schema).iot_schema SET version = 1 WHERE component = 'points'",
                ] {
                    try await storage.client.query(PostgresQuery(unsafeSQL: sql), logger: storage.logger)
                }
                return storage.configuration.schemaPrefix
            }
            // A new process on the same schemas.
            try await withStorage(on: server, prefix: prefix) { storage in
                let store = PostgresPointStore(storage: storage)
                let got = try await store.aggregate(
                    .tenant("t"), series: key, from: base, to: base + 2 * Self.hour, bucketMillis: Self.hour)
                #expect(got.map(\.count) == [2, 2] && got.map(\.sum) == [40, 80])
                try await store.write(PointBatch(tenant: "t", points: [p(2 * Self.hour + 1, 128)], journalSequence: 0))
                #expect(try await rowCount(storage, "t", "rollup_1h") == 2, "the open third hour has no row")
                #expect(try await store.closeRollups(tenant: "t", before: base + 3 * Self.hour) == 1)
                #expect(try await rowCount(storage, "t", "rollup_1h") == 3)
                #expect(try await mismatchedRows(storage, "t") == 0)
            }
        }
    }
}

/// The number of rows of `table` of `tenant`.
private func rowCount(_ storage: PostgresStorage, _ tenant: TenantID, _ table: String) async throws -> Int {
    let schema = try storage.schema(of: tenant)
    var n = 0
    for try await c in try await storage.client.query(
        PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(schema).\(table)"), logger: storage.logger
    ).decode(Int64.self) { n = Int(c) }
    return n
}

/// The minutes and hours of `tenant` whose rows and parts together differ from their points in count, sum,
/// first or last time (or exist on one side only), and the rows on the wrong side of the first open minute (a
/// minute row at or after it, a part before it).
private func mismatchedRows(_ storage: PostgresStorage, _ tenant: TenantID) async throws -> Int {
    let schema = try storage.schema(of: tenant)
    var total = 0
    for (width, table) in [(3_600_000, "rollup_1h"), (60_000, "rollup_1m")] {
        let sql = """
            WITH p AS (
              SELECT series, ts - mod(mod(ts, \(width)) + \(width), \(width)) AS bucket, count(*) AS count,
                     sum(num) AS sum, min(ts) AS first_ts, max(ts) AS last_ts
              FROM \(schema).points GROUP BY 1, 2
            ), r AS (
              SELECT series, bucket - mod(mod(bucket, \(width)) + \(width), \(width)) AS bucket, sum(count) AS count,
                     sum(sum) AS sum, min(first_ts) AS first_ts, max(last_ts) AS last_ts
              FROM (SELECT * FROM \(schema).\(table) UNION ALL SELECT * FROM \(schema).rollup_parts) u GROUP BY 1, 2
            )
            SELECT count(*) FROM p FULL JOIN r USING (series, bucket)
            WHERE p.count IS DISTINCT FROM r.count OR p.sum IS DISTINCT FROM r.sum
               OR p.first_ts IS DISTINCT FROM r.first_ts OR p.last_ts IS DISTINCT FROM r.last_ts
            UNION ALL
            SELECT count(*) FROM \(schema).rollup_1m, \(schema).rollup_state WHERE bucket >= open_from
            UNION ALL
            SELECT count(*) FROM \(schema).rollup_parts, \(schema).rollup_state WHERE bucket < open_from
            """
        for try await n in try await storage.client.query(PostgresQuery(unsafeSQL: sql), logger: storage.logger)
            .decode(Int64.self)
        {
            total += Int(n)
        }
    }
    return total
}
