import IoTCore

/// The SQL of one rollup level's table, built once: a connection looks its prepared statements up by their
/// text, and closing minutes did so for each of 100,000 series.
struct RollupSQL: Sendable {
    /// Adds a batch's partial to the stored row (creating it): exact for count/sum/min/max/first/last.
    let upsert: String
    /// Replaces a row with a recomputed one.
    let replace: String
    let delete: String
    let deleteBefore: String
    let select: String

    init(table: String) {
        upsert = """
            INSERT INTO \(table)(series, bucket, count, sum, min, max, first_ts, first_value, last_ts, last_value)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(series, bucket) DO UPDATE SET
              count = count + excluded.count,
              sum = coalesce(sum + excluded.sum, sum, excluded.sum),
              min = coalesce(min(min, excluded.min), min, excluded.min),
              max = coalesce(max(max, excluded.max), max, excluded.max),
              first_ts = CASE WHEN excluded.first_ts < first_ts THEN excluded.first_ts ELSE first_ts END,
              first_value = CASE WHEN excluded.first_ts < first_ts THEN excluded.first_value ELSE first_value END,
              last_ts = CASE WHEN excluded.last_ts > last_ts THEN excluded.last_ts ELSE last_ts END,
              last_value = CASE WHEN excluded.last_ts > last_ts THEN excluded.last_value ELSE last_value END
            """
        replace = """
            INSERT OR REPLACE INTO \(table)(series, bucket, count, sum, min, max, first_ts, first_value, last_ts, last_value)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        delete = "DELETE FROM \(table) WHERE series = ? AND bucket = ?"
        deleteBefore = "DELETE FROM \(table) WHERE series = ? AND bucket <= ?"
        select = """
            SELECT bucket, count, sum, min, max, first_ts, first_value, last_ts, last_value FROM \(table)
            WHERE series = ? AND bucket >= ? AND bucket < ?
            """
    }

    static let minute = RollupSQL(table: "rollup_1m")
    static let hour = RollupSQL(table: "rollup_1h")
}

/// The SQL of each rollup level's table.
extension RollupLevel {
    var sql: RollupSQL { self == .minute ? .minute : .hour }
}

extension SQLitePointStore {
    static let rawScanSQL = "SELECT ts, value FROM points WHERE series = ? AND ts >= ? AND ts < ? ORDER BY ts"

    /// Binds a partial as the 10 values of an upsert or replace.
    static func bind(_ s: Statement, _ key: BucketKey, _ p: RollupPartial) {
        s.bind(1, key.series)
        s.bind(2, key.start)
        s.bind(3, p.count)
        s.bind(4, p.sum)
        s.bind(5, p.min)
        s.bind(6, p.max)
        s.bind(7, p.firstTime)
        s.bind(8, p.first)
        s.bind(9, p.lastTime)
        s.bind(10, p.last)
    }

    /// Reads one rollup row (columns as in ``RollupSQL/select``, from column 1).
    static func partial(fromRollupRow s: Statement) -> RollupPartial {
        var p = RollupPartial()
        p.count = s.int(1)
        p.sum = s.optionalDouble(2)
        p.min = s.optionalDouble(3)
        p.max = s.optionalDouble(4)
        p.firstTime = s.int64(5)
        p.first = s.signalValue(6)
        p.lastTime = s.int64(7)
        p.last = s.signalValue(8)
        return p
    }

    /// Aggregates the raw points of `series` in `[from, to)`.
    static func rawPartial(_ conn: SQLiteConnection, series: Int64, from: Int64, to: Int64) throws -> RollupPartial {
        let s = try conn.statement(rawScanSQL)
        defer { s.reset() }
        s.bind(1, series)
        s.bind(2, from)
        s.bind(3, to)
        var p = RollupPartial()
        while try s.step() { p.add(time: s.int64(0), value: s.signalValue(1)) }
        return p
    }

    /// Merges the minute rows of `series` in `[from, to)`.
    static func minutePartial(_ conn: SQLiteConnection, series: Int64, from: Int64, to: Int64) throws -> RollupPartial {
        let s = try conn.statement(RollupLevel.minute.sql.select)
        defer { s.reset() }
        s.bind(1, series)
        s.bind(2, from)
        s.bind(3, to)
        var p = RollupPartial()
        while try s.step() { p.merge(partial(fromRollupRow: s)) }
        return p
    }

    /// Recomputes one rollup row: a minute from the raw points, an hour from its (already exact) minutes.
    static func recompute(_ conn: SQLiteConnection, _ level: RollupLevel, _ key: BucketKey) throws {
        let (next, overflow) = key.start.addingReportingOverflow(level.millis)
        let end = overflow ? Int64.max : next
        let p =
            level == .minute
            ? try rawPartial(conn, series: key.series, from: key.start, to: end)
            : try minutePartial(conn, series: key.series, from: key.start, to: end)
        if p.count == 0 {
            let d = try conn.statement(level.sql.delete)
            d.bind(1, key.series)
            d.bind(2, key.start)
            try d.run()
            d.reset()
        } else {
            let r = try conn.statement(level.sql.replace)
            bind(r, key, p)
            try r.run()
            r.reset()
        }
    }

    /// Writes a batch's rollup partials (sorted by key, one per minute): one upsert per touched
    /// (series, bucket) and level; buckets in `dirtyMinutes` (values overwritten) are recomputed
    /// instead, minutes from the raw points, hours from their minutes.
    static func writeRollups(
        _ conn: SQLiteConnection, minutes: [(BucketKey, RollupPartial)], dirtyMinutes: Set<BucketKey>
    ) throws {
        let hourLevel = RollupLevel.hour
        var dirtyHours = Set<BucketKey>()
        for key in dirtyMinutes {
            dirtyHours.insert(BucketKey(series: key.series, start: hourLevel.bucketStart(key.start)))
        }
        let upsertMinute = try conn.statement(RollupLevel.minute.sql.upsert)
        for (key, p) in minutes where !dirtyMinutes.contains(key) {
            bind(upsertMinute, key, p)
            try upsertMinute.run()
            upsertMinute.reset()
        }
        let hours = RollupPartial.hours(of: minutes, skipping: dirtyHours)
        for key in dirtyMinutes.sorted() { try recompute(conn, .minute, key) }
        let upsertHour = try conn.statement(hourLevel.sql.upsert)
        for (key, p) in hours {
            bind(upsertHour, key, p)
            try upsertHour.run()
            upsertHour.reset()
        }
        for key in dirtyHours.sorted() { try recompute(conn, .hour, key) }
    }

    /// After the points of `series` before `time` were deleted: drops the rollup rows that lie wholly
    /// before `time` and recomputes the ones that straddle it (a minute only when closed: an open one has no row).
    static func trimRollups(_ conn: SQLiteConnection, series: Int64, before time: Int64, openFrom: Int64) throws {
        for level in RollupLevel.allCases {
            let (limit, overflow) = time.subtractingReportingOverflow(level.millis)
            if !overflow {
                let d = try conn.statement(level.sql.deleteBefore)
                d.bind(1, series)
                d.bind(2, limit)
                try d.run()
                d.reset()
            }
            let start = level.bucketStart(time)
            if start != time && (level == .hour || start < openFrom) {
                try recompute(conn, level, BucketKey(series: series, start: start))
            }
        }
    }
}
