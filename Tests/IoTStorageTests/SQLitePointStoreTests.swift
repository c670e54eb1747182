import CIoTSQLite
import Foundation
import IoTCore
import IoTStorage
import IoTTestSupport
import IoTTesting
import Testing

/// Reads a tenant database directly through the C API (a separate connection), as an outside check.
final class RawDatabase {
    let db: OpaquePointer
    init(_ path: String) throws {
        var h: OpaquePointer?
        guard sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK, let h else {
            throw IoTError(.storage, "cannot open \(path)")
        }
        db = h
    }
    deinit { sqlite3_close_v2(db) }

    /// All rows of `sql`, each column as text (NULL as "NULL").
    func rows(_ sql: String) throws -> [[String]] {
        var s: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &s, nil) == SQLITE_OK, let s else {
            throw IoTError(.storage, "prepare: \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(s) }
        var result: [[String]] = []
        while sqlite3_step(s) == SQLITE_ROW {
            result.append(
                (0..<sqlite3_column_count(s)).map { i in
                    sqlite3_column_text(s, i).map { String(cString: $0) } ?? "NULL"
                })
        }
        return result
    }

    func execute(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw IoTError(.storage, "exec: \(String(cString: sqlite3_errmsg(db)))")
        }
    }
}

@Suite struct SQLitePointStoreTests {
    static let t0: Int64 = 1_700_000_123_457
    let tenant: TenantID = "acme"

    /// Pseudo-random points over ~3 hours, in shuffled batches, plus overwrites: late points everywhere.
    func writeWorkload(_ store: SQLitePointStore) async throws {
        var seed: UInt64 = 7
        func next(_ bound: UInt64) -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (seed >> 33) % bound
        }
        var points: [Point] = []
        for device in ["d1", "d2"] {
            var time = Self.t0
            while time < Self.t0 + 3 * 3_600_000 {
                let value: SignalValue =
                    switch next(10) {
                    case 0: .text("t\(next(5))")
                    case 1: .bool(next(2) == 0)
                    default: .number(Double(next(4000)) / 4 - 500)
                    }
                points.append(Point(device: device, signal: "s", time: time, value: value))
                time += 1 + Int64(next(9_000))
            }
        }
        for i in stride(from: points.count - 1, to: 0, by: -1) { points.swapAt(i, Int(next(UInt64(i + 1)))) }
        for chunk in stride(from: 0, to: points.count, by: 250) {
            try await store.write(
                PointBatch(
                    tenant: tenant, points: Array(points[chunk..<min(chunk + 250, points.count)]),
                    journalSequence: UInt64(chunk + 1)))
        }
        var overwrites: [Point] = []
        for _ in 0..<200 {
            var p = points[Int(next(UInt64(points.count)))]
            p.value = next(3) == 0 ? .text("over") : .number(Double(next(100)))
            overwrites.append(p)
        }
        try await store.write(PointBatch(tenant: tenant, points: overwrites, journalSequence: 0))
    }

    /// Rows of a rollup table that differ from the same aggregate computed from `points` (both ways): of the
    /// points before `openFrom`, the closed minutes, whose rows the tables hold.
    func rollupDifferences(
        _ raw: RawDatabase, table: String, millis: Int64, openFrom: Int64 = .max
    ) throws -> [[String]] {
        let expected = """
            SELECT * FROM (WITH g AS (
              SELECT series, ts / \(millis) * \(millis) AS bucket, count(*) AS count,
                     sum(CASE WHEN typeof(value) IN ('real', 'integer') THEN value END) AS sum,
                     min(CASE WHEN typeof(value) IN ('real', 'integer') THEN value END) AS min,
                     max(CASE WHEN typeof(value) IN ('real', 'integer') THEN value END) AS max,
                     min(ts) AS first_ts, max(ts) AS last_ts
              FROM points WHERE ts < \(openFrom) GROUP BY 1, 2)
            SELECT g.series, g.bucket, g.count, g.sum, g.min, g.max, g.first_ts, f.value, typeof(f.value),
                   g.last_ts, l.value, typeof(l.value)
            FROM g JOIN points f ON f.series = g.series AND f.ts = g.first_ts
                   JOIN points l ON l.series = g.series AND l.ts = g.last_ts)
            """
        let actual = """
            SELECT series, bucket, count, sum, min, max, first_ts, first_value, typeof(first_value),
                   last_ts, last_value, typeof(last_value) FROM \(table)
            """
        return try raw.rows("SELECT 'missing', * FROM (\(expected) EXCEPT \(actual))")
            + raw.rows("SELECT 'extra', * FROM (\(actual) EXCEPT \(expected))")
    }

    @Test func rollupTablesEqualRawAggregates() async throws {
        let dir = TemporaryDirectory()
        let store = SQLitePointStore(storage: try SQLiteStorage(configuration: .init(directory: dir.path)))
        try await writeWorkload(store)
        let raw = try RawDatabase("\(dir.path)/tenants/acme.sqlite")
        #expect(try raw.rows("SELECT count(*) FROM rollup_1m")[0][0] != "0")
        #expect(try rollupDifferences(raw, table: "rollup_1m", millis: 60_000) == [])
        #expect(try rollupDifferences(raw, table: "rollup_1h", millis: 3_600_000) == [])
        // Retention at an unaligned time trims and recomputes the straddling buckets.
        let deleted = try await store.deletePoints(.tenant(tenant), before: Self.t0 + 4_000_321)
        #expect(deleted > 0)
        #expect(try raw.rows("SELECT count(*) FROM points WHERE ts < \(Self.t0 + 4_000_321)")[0][0] == "0")
        #expect(try rollupDifferences(raw, table: "rollup_1m", millis: 60_000) == [])
        #expect(try rollupDifferences(raw, table: "rollup_1h", millis: 3_600_000) == [])
        #expect(try raw.rows("PRAGMA integrity_check") == [["ok"]])
    }

    /// Issue 22, item 8: a point into an open minute writes no rollup row; the minutes close, with rows built
    /// from the points, once they ended the rollup delay ago. The workload spans 3 hours and the clock stands
    /// 90 minutes in: its late points and overwrites fall on both sides. Aggregates are the same before and
    /// after the closing, and after reopening.
    @Test func minutesCloseAfterTheRollupDelayAndAggregatesAreExactOnBothSides() async throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock(now: Self.t0 + 90 * 60_000)
        let store = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)), clock: clock)
        try await writeWorkload(store)
        let raw = try RawDatabase("\(dir.path)/tenants/acme.sqlite")
        let openFrom = (Self.t0 + 88 * 60_000) / 60_000 * 60_000
        #expect(try raw.rows("SELECT value FROM points_meta WHERE key = 'rollup_open_from'") == [["\(openFrom)"]])
        #expect(try raw.rows("SELECT count(*) FROM points WHERE ts >= \(openFrom)")[0][0] != "0")
        #expect(try raw.rows("SELECT count(*) FROM rollup_1m WHERE bucket >= \(openFrom)") == [["0"]])
        #expect(try rollupDifferences(raw, table: "rollup_1m", millis: 60_000, openFrom: openFrom) == [])
        #expect(try rollupDifferences(raw, table: "rollup_1h", millis: 3_600_000, openFrom: openFrom) == [])

        // Whole range, hour and minute buckets, and unaligned ones across the first open minute.
        let queries: [(Int64, Int64, Int64?)] = [
            (Self.t0 - 3_600_000, Self.t0 + 4 * 3_600_000, nil),
            (Self.t0 / 3_600_000 * 3_600_000, Self.t0 + 4 * 3_600_000, 3_600_000),
            (openFrom - 30 * 60_000, openFrom + 30 * 60_000, 60_000),
            (openFrom - 7_777_777, openFrom + 5_555_555, 1_234_567),
        ]
        func answers(_ store: SQLitePointStore) async throws -> [[AggregateBucket]] {
            var all: [[AggregateBucket]] = []
            for device in ["d1", "d2"] {
                for (from, to, bucket) in queries {
                    all.append(
                        try await store.aggregate(
                            .tenant(tenant), series: SeriesKey(device: device, signal: "s"), from: from, to: to,
                            bucketMillis: bucket))
                }
            }
            return all
        }
        let before = try await answers(store)
        #expect(before.allSatisfy { !$0.isEmpty })
        let points = Int(try raw.rows(Self.pointsOfD1)[0][0])
        #expect(before[0].map(\.count) == [points], "every point of d1 counted once")

        // Time passes: the next write closes every minute that ended 2 minutes ago.
        clock.advance(byMillis: 3 * 3_600_000)
        try await store.write(
            PointBatch(
                tenant: tenant,
                points: [Point(device: "d3", signal: "s", time: clock.now(), value: .number(1))],
                journalSequence: 0))
        let closedFrom = (clock.now() - 120_000) / 60_000 * 60_000
        #expect(
            try raw.rows("SELECT value FROM points_meta WHERE key = 'rollup_open_from'") == [["\(closedFrom)"]])
        #expect(try rollupDifferences(raw, table: "rollup_1m", millis: 60_000, openFrom: closedFrom) == [])
        #expect(try rollupDifferences(raw, table: "rollup_1h", millis: 3_600_000, openFrom: closedFrom) == [])
        #expect(try await answers(store) == before)

        // A late point into a closed minute updates its rows; an overwrite there recomputes them.
        try await store.write(
            PointBatch(
                tenant: tenant,
                points: [
                    Point(device: "d1", signal: "s", time: openFrom + 1, value: .number(1_000)),
                    Point(device: "d2", signal: "s", time: Self.t0, value: .number(-1_000)),
                ], journalSequence: 0))
        #expect(try rollupDifferences(raw, table: "rollup_1m", millis: 60_000, openFrom: closedFrom) == [])
        #expect(try rollupDifferences(raw, table: "rollup_1h", millis: 3_600_000, openFrom: closedFrom) == [])
        let after = try await answers(store)
        let reopened = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)), clock: clock)
        #expect(try await answers(reopened) == after)
        #expect(try raw.rows("PRAGMA integrity_check") == [["ok"]])
    }

    /// A closing that builds more minute rows than one chunk of the writer's (4,096): 3,000 series with points in
    /// two minutes on either side of an hour. Every row is built once and equals the raw points' aggregates.
    @Test func aClosingOfManySeriesBuildsEveryMinuteAndHourOnce() async throws {
        let dir = TemporaryDirectory()
        let store = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)), clock: ManualClock(now: Self.t0))
        let hour = (Self.t0 / 3_600_000 + 1) * 3_600_000
        var points: [Point] = []
        for device in 0..<3_000 {
            for k in 0..<6 {
                let time: Int64 = hour - 60_000 + Int64(k) * 20_000
                let value = Double(device * 10 + k)
                points.append(Point(device: "d\(device)", signal: "s", time: time, value: .number(value)))
            }
        }
        try await store.write(PointBatch(tenant: tenant, points: points, journalSequence: 0))
        let raw = try RawDatabase("\(dir.path)/tenants/acme.sqlite")
        #expect(try raw.rows("SELECT count(*) FROM rollup_1m") == [["0"]], "nothing closed before the call")

        let built = try await store.closeRollups(tenant: tenant, before: hour + 60_000)
        #expect(built == 6_000)
        #expect(try raw.rows("SELECT count(*) FROM rollup_1m") == [["6000"]])
        #expect(try raw.rows("SELECT count(*) FROM rollup_1h") == [["6000"]])
        #expect(try rollupDifferences(raw, table: "rollup_1m", millis: 60_000, openFrom: hour + 60_000) == [])
        #expect(try rollupDifferences(raw, table: "rollup_1h", millis: 3_600_000, openFrom: hour + 60_000) == [])
        let last = try await store.aggregate(
            .tenant(tenant), series: SeriesKey(device: "d2999", signal: "s"), from: hour - 60_000,
            to: hour + 60_000, bucketMillis: nil)
        #expect(last.map(\.count) == [6])
        let sum = (0..<6).reduce(0) { $0 + 29_990 + $1 }
        #expect(last.first?.sum == Double(sum))
    }

    static let pointsOfD1 = "SELECT count(*) FROM points JOIN series ON series.id = points.series WHERE device = 'd1'"

    /// A database of schema version 1 kept a row for every minute: its first open minute is the one after its
    /// last row, so nothing is rolled up twice.
    @Test func aVersionOneDatabaseOpensAfterItsLastMinuteRow() async throws {
        let dir = TemporaryDirectory()
        let store = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)),
            clock: ManualClock(now: Self.t0 + 4 * 3_600_000))
        try await writeWorkload(store)
        let raw = try RawDatabase("\(dir.path)/tenants/acme.sqlite")
        try raw.execute(
            "DELETE FROM points_meta WHERE key = 'rollup_open_from'; UPDATE iot_schema SET version = 1 WHERE component = 'points'"
        )
        let last = Int64(try raw.rows("SELECT max(bucket) FROM rollup_1m")[0][0])!
        let reopened = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)),
            clock: ManualClock(now: Self.t0 + 4 * 3_600_000))
        let key = SeriesKey(device: "d1", signal: "s")
        let all = try await reopened.aggregate(
            .tenant(tenant), series: key, from: Self.t0, to: Self.t0 + 4 * 3_600_000, bucketMillis: nil)
        #expect(try raw.rows("SELECT value FROM points_meta WHERE key = 'rollup_open_from'") == [["\(last + 60_000)"]])
        #expect(all.map(\.count) == [Int(try raw.rows(Self.pointsOfD1)[0][0])!])
    }

    /// Issue 23, item 7: the console's 7-day chart of a 1 Hz signal (at most 1,000 means over whole minutes,
    /// aligned to the bucket) is answered from the rollups alone: with every raw point deleted behind the store's
    /// back, the same buckets come back.
    /// The store's clock reads `end` plus the rollup delay, so the 7 days' minutes close as the writes go.
    @Test func aSevenDayChartAtOneHertzIsServedFromTheRollups() async throws {
        let dir = TemporaryDirectory()
        let day: Int64 = 86_400_000
        let end = 1_800_000_000_000 / day * day
        let store = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)),
            clock: ManualClock(now: end + 120_000))
        let start = end - 7 * day
        for batch in stride(from: start, to: end, by: 10_000_000) {
            let points = stride(from: batch, to: min(batch + 10_000_000, end), by: 1_000).map {
                Point(device: "d", signal: "temp", time: $0, value: .number(Double($0 / 1_000 % 600) / 10))
            }
            try await store.write(PointBatch(tenant: tenant, points: points, journalSequence: 0))
        }
        // What the console asks for a 7-day range ending now (+1 min): 11-minute means from an aligned start.
        let to = end + 60_000
        let bucket = max(60_000, (to - (to - 7 * day) + 59_999_999) / 60_000_000 * 60_000)
        let from = (to - 7 * day) / bucket * bucket
        let key = SeriesKey(device: "d", signal: "temp")
        let served = try await store.aggregate(.tenant(tenant), series: key, from: from, to: to, bucketMillis: bucket)
        #expect(served.count <= 2_000 && served.count > 900, "\(served.count) buckets")
        #expect(served.reduce(0) { $0 + $1.count } == 7 * 86_400, "every point counted")
        let raw = try RawDatabase("\(dir.path)/tenants/acme.sqlite")
        try raw.execute("DELETE FROM points")
        let fromRollups = try await store.aggregate(
            .tenant(tenant), series: key, from: from, to: to, bucketMillis: bucket)
        #expect(fromRollups == served, "the chart reads no raw point")
    }

    @Test func reopeningKeepsPointsRollupsAndSequence() async throws {
        let dir = TemporaryDirectory()
        let key = SeriesKey(device: "d1", signal: "s")
        let before: ([Point], [AggregateBucket], UInt64)
        do {
            let store = SQLitePointStore(storage: try SQLiteStorage(configuration: .init(directory: dir.path)))
            try await writeWorkload(store)
            try await store.write(PointBatch(tenant: tenant, points: [], journalSequence: 99_999))
            before = (
                try await store.range(.tenant(tenant), series: key, from: 0, to: .max, limit: nil, order: .ascending),
                try await store.aggregate(
                    .tenant(tenant), series: key, from: Self.t0 + 1, to: Self.t0 + 9_000_000, bucketMillis: 600_000),
                try await store.committedSequence(tenant: tenant)
            )
        }
        let store = SQLitePointStore(storage: try SQLiteStorage(configuration: .init(directory: dir.path)))
        #expect(try await store.committedSequence(tenant: tenant) == 99_999)
        #expect(before.2 == 99_999)
        #expect(
            try await store.range(.tenant(tenant), series: key, from: 0, to: .max, limit: nil, order: .ascending)
                == before.0)
        #expect(
            try await store.aggregate(
                .tenant(tenant), series: key, from: Self.t0 + 1, to: Self.t0 + 9_000_000, bucketMillis: 600_000)
                == before.1)
        // Series ids come back from the table: a new write to an existing series lands in it, and a new series
        // beside it gets an id of its own.
        try await store.write(
            PointBatch(
                tenant: tenant,
                points: [
                    Point(device: "d1", signal: "s", time: 1, value: .number(1)),
                    Point(device: "d9", signal: "s", time: 1, value: .number(9)),
                ], journalSequence: 0))
        #expect(
            try await store.range(.tenant(tenant), series: key, from: 0, to: 2, limit: nil, order: .ascending).count
                == 1)
        #expect(try await store.latest(.tenant(tenant), device: "d9", signals: nil).map(\.value) == [.number(9)])
        let raw = try RawDatabase("\(dir.path)/tenants/acme.sqlite")
        #expect(try raw.rows("SELECT count(*) FROM series") == [["3"]])
        #expect(
            try raw.rows("SELECT count(*) FROM points WHERE series = (SELECT id FROM series WHERE device = 'd9')") == [
                ["1"]
            ])
        #expect(try raw.rows("PRAGMA integrity_check") == [["ok"]])
    }

    @Test func failedBatchCommitsNothing() async throws {
        let dir = TemporaryDirectory()
        let store = SQLitePointStore(storage: try SQLiteStorage(configuration: .init(directory: dir.path)))
        try await store.write(
            PointBatch(
                tenant: tenant, points: [Point(device: "d", signal: "s", time: 1, value: .number(1))],
                journalSequence: 5))
        let raw = try RawDatabase("\(dir.path)/tenants/acme.sqlite")
        try raw.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON points WHEN NEW.ts = 666 BEGIN SELECT RAISE(ABORT, 'poison'); END")
        let batch = PointBatch(
            tenant: tenant,
            points: [
                Point(device: "new", signal: "s", time: 10, value: .number(1)),
                Point(device: "d", signal: "s", time: 2, value: .number(2)),
                Point(device: "d", signal: "s", time: 666, value: .number(3)),
            ], journalSequence: 6)
        await #expect(throws: IoTError.self) { try await store.write(batch) }
        #expect(try await store.committedSequence(tenant: tenant) == 5)
        #expect(try raw.rows("SELECT count(*) FROM points") == [["1"]])
        #expect(try raw.rows("SELECT count(*) FROM series") == [["1"]])
        #expect(try raw.rows("SELECT count(*), sum(count) FROM rollup_1m") == [["1", "1"]])
        try raw.execute("DROP TRIGGER poison")
        try await store.write(batch)
        #expect(try await store.committedSequence(tenant: tenant) == 6)
        #expect(try await store.latest(.tenant(tenant), device: "new", signals: nil).map(\.value) == [.number(1)])
        #expect(try rollupDifferences(raw, table: "rollup_1m", millis: 60_000) == [])
    }

    @Test func firstWriteWinsKeepsTheStoredValue() async throws {
        let dir = TemporaryDirectory()
        let sqlite = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)),
            configuration: .init(duplicatePolicy: .firstWriteWins))
        let memory = InMemoryPointStore(duplicatePolicy: .firstWriteWins)
        for store in [sqlite, memory] as [any PointStore] {
            try await store.write(
                PointBatch(
                    tenant: tenant, points: [Point(device: "d", signal: "s", time: 1, value: .number(1))],
                    journalSequence: 0))
            try await store.write(
                PointBatch(
                    tenant: tenant, points: [Point(device: "d", signal: "s", time: 1, value: .number(2))],
                    journalSequence: 0))
            #expect(try await store.latest(.tenant(tenant), device: "d", signals: nil).map(\.value) == [.number(1)])
            #expect(
                try await store.aggregate(
                    .tenant(tenant), series: SeriesKey(device: "d", signal: "s"), from: 0, to: 10, bucketMillis: nil
                ).first?.sum == 1)
        }
    }

    /// Issue 21, item 2: both stores say how many stored points a batch replaced with a different value
    /// (a point earlier in the same batch included); the same value again, a new time, or first-write-wins
    /// replace nothing.
    @Test(arguments: [DuplicatePolicy.lastWriteWins, .firstWriteWins])
    func writesReportTheOverwrittenPoints(policy: DuplicatePolicy) async throws {
        let dir = TemporaryDirectory()
        let sqlite = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)),
            configuration: .init(duplicatePolicy: policy))
        for store in [sqlite, InMemoryPointStore(duplicatePolicy: policy)] as [any PointStore] {
            func write(_ values: [(Int64, Double)]) async throws -> Int {
                let points = values.map { Point(device: "d", signal: "s", time: $0.0, value: .number($0.1)) }
                return try await store.writeReporting(PointBatch(tenant: tenant, points: points, journalSequence: 0))
                    .overwritten
            }
            #expect(try await write([(1, 1)]) == 0)
            #expect(try await write([(1, 1), (2, 5)]) == 0)
            let replaced = policy == .lastWriteWins
            #expect(try await write([(1, 2)]) == (replaced ? 1 : 0))
            #expect(try await write([(3, 1), (3, 4)]) == (replaced ? 1 : 0), "within one batch")
        }
    }

    @Test func retentionDeletesOlderThanTheConfiguredAge() async throws {
        let dir = TemporaryDirectory()
        let store = SQLitePointStore(
            storage: try SQLiteStorage(configuration: .init(directory: dir.path)),
            configuration: .init(retention: .milliseconds(3_600_000)))
        let points = (0..<240).map {
            Point(device: "d", signal: "s", time: Self.t0 + Int64($0) * 30_000, value: .number(Double($0)))
        }
        try await store.write(PointBatch(tenant: tenant, points: points, journalSequence: 0))
        let now = Self.t0 + 2 * 3_600_000 + 12_345
        let deleted = try await store.applyRetention(tenant: tenant, now: now)
        #expect(deleted == points.filter { $0.time < now - 3_600_000 }.count)
        let agg = try await store.aggregate(
            .tenant(tenant), series: SeriesKey(device: "d", signal: "s"), from: 0, to: .max, bucketMillis: nil)
        #expect(agg.first?.count == 240 - deleted)
        #expect(agg.first?.first == points.first { $0.time >= now - 3_600_000 }?.value)
        let raw = try RawDatabase("\(dir.path)/tenants/acme.sqlite")
        #expect(try rollupDifferences(raw, table: "rollup_1h", millis: 3_600_000) == [])
    }
}
