import IoTCore
import Logging
import NIOCore
import PostgresNIO

extension RollupLevel {
    var table: String { self == .minute ? "rollup_1m" : "rollup_1h" }
}

extension PostgresPointStore {
    /// The columns of a rollup row after its key.
    static let rollupColumnNames = [
        "count", "sum", "min", "max", "first_ts", "first_kind", "first_num", "first_txt", "last_ts", "last_kind",
        "last_num", "last_txt",
    ]
    /// ``rollupColumnNames`` as `SELECT`ed by the queries here.
    static let rollupColumns = rollupColumnNames.joined(separator: ", ")

    /// The row types of ``rollupColumns`` preceded by the bucket.
    typealias RollupRow = (
        Int64, Int64, Double?, Double?, Double?, Int64, Int16, Double?, ByteBuffer?, Int64, Int16, Double?, ByteBuffer?
    )

    static func partial(_ row: RollupRow) -> RollupPartial {
        var p = RollupPartial()
        p.count = Int(row.1)
        p.sum = row.2
        p.min = row.3
        p.max = row.4
        p.firstTime = row.5
        p.first = SignalValue(kind: row.6, num: row.7, txt: row.8)
        p.lastTime = row.9
        p.last = SignalValue(kind: row.10, num: row.11, txt: row.12)
        return p
    }

    /// What a written rollup row does to a stored one of the same (series, bucket).
    enum RowMerge {
        /// Adds to it (exact for count, sum, min, max, first and last).
        case add
        /// Replaces it (a recomputed row).
        case replace
        /// Nothing: the table has no key (`rollup_parts`).
        case append
    }

    /// The `ON CONFLICT` clause of `merge` for a rollup table aliased `r`.
    static func conflictClause(_ merge: RowMerge) -> String {
        switch merge {
        case .append: ""
        case .replace:
            """
            ON CONFLICT (series, bucket) DO UPDATE SET
            count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
            first_ts = excluded.first_ts, first_kind = excluded.first_kind, first_num = excluded.first_num,
            first_txt = excluded.first_txt, last_ts = excluded.last_ts, last_kind = excluded.last_kind,
            last_num = excluded.last_num, last_txt = excluded.last_txt
            """
        case .add:
            """
            ON CONFLICT (series, bucket) DO UPDATE SET
            count = r.count + excluded.count,
            sum = coalesce(r.sum + excluded.sum, r.sum, excluded.sum),
            min = least(r.min, excluded.min), max = greatest(r.max, excluded.max),
            first_ts = CASE WHEN excluded.first_ts < r.first_ts THEN excluded.first_ts ELSE r.first_ts END,
            first_kind = CASE WHEN excluded.first_ts < r.first_ts THEN excluded.first_kind ELSE r.first_kind END,
            first_num = CASE WHEN excluded.first_ts < r.first_ts THEN excluded.first_num ELSE r.first_num END,
            first_txt = CASE WHEN excluded.first_ts < r.first_ts THEN excluded.first_txt ELSE r.first_txt END,
            last_ts = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.last_ts ELSE r.last_ts END,
            last_kind = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.last_kind ELSE r.last_kind END,
            last_num = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.last_num ELSE r.last_num END,
            last_txt = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.last_txt ELSE r.last_txt END
            """
        }
    }

    /// Writes rollup rows into `table` (`rollup_1m`, `rollup_1h` or `rollup_parts`), from 15 array binds.
    static func upsert(
        _ c: PostgresConnection, schema: String, table: String, _ rows: [(BucketKey, RollupPartial)],
        _ merge: RowMerge, logger: Logger
    ) async throws {
        guard !rows.isEmpty else { return }
        var first = ValueColumns()
        var last = ValueColumns()
        for (_, p) in rows {
            first.append(p.first ?? .number(0))
            last.append(p.last ?? .number(0))
        }
        try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(schema).\(table) AS r (series, bucket, \(rollupColumns))
                    SELECT s, b, n, CASE WHEN h THEN su END, CASE WHEN h THEN mi END, CASE WHEN h THEN ma END,
                           ft, fk, CASE WHEN fk = 2 THEN NULL ELSE fn END, CASE WHEN fk = 2 THEN fx END,
                           lt, lk, CASE WHEN lk = 2 THEN NULL ELSE ln END, CASE WHEN lk = 2 THEN lx END
                    FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::bool[], $5::float8[], $6::float8[], $7::float8[],
                                $8::int8[], $9::int2[], $10::float8[], $11::bytea[],
                                $12::int8[], $13::int2[], $14::float8[], $15::bytea[])
                      AS u(s, b, n, h, su, mi, ma, ft, fk, fn, fx, lt, lk, ln, lx)
                    \(conflictClause(merge))
                    """,
                binds: PostgresStorage.binds(
                    PackedArray(rows.map(\.0.series)), PackedArray(rows.map(\.0.start)),
                    PackedArray(rows.map { Int64($0.1.count) }), PackedArray(rows.map { $0.1.sum != nil }),
                    PackedArray(rows.map { $0.1.sum ?? 0 }), PackedArray(rows.map { $0.1.min ?? 0 }),
                    PackedArray(rows.map { $0.1.max ?? 0 }), PackedArray(rows.map(\.1.firstTime)),
                    PackedArray(first.kinds), PackedArray(first.nums), PackedArray(first.txts),
                    PackedArray(rows.map(\.1.lastTime)), PackedArray(last.kinds), PackedArray(last.nums),
                    PackedArray(last.txts))), logger: logger)
    }

    /// The partial of the raw points of `series` in `[from, to)`.
    static func rawPartial(
        _ c: PostgresConnection, schema: String, series: Int64, from: Int64, to: Int64, logger: Logger
    ) async throws -> RollupPartial {
        var p = RollupPartial()
        let rows = try await c.query(
            PostgresQuery(
                unsafeSQL:
                    "SELECT ts, kind, num, txt FROM \(schema).points WHERE series = $1 AND ts >= $2 AND ts < $3 ORDER BY ts",
                binds: PostgresStorage.binds(series, from, to)), logger: logger)
        for try await (ts, kind, num, txt) in rows.decode((Int64, Int16, Double?, ByteBuffer?).self) {
            p.add(time: ts, value: SignalValue(kind: kind, num: num, txt: txt))
        }
        return p
    }

    /// The rows of `table` for `series` with a bucket in `[from, to)`, by bucket start (`rollup_parts` may hold
    /// several rows of one bucket).
    static func rollupRows(
        _ c: PostgresConnection, schema: String, table: String, series: Int64, from: Int64, to: Int64,
        logger: Logger
    ) async throws -> [(Int64, RollupPartial)] {
        guard from < to else { return [] }
        let rows = try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT bucket, \(rollupColumns) FROM \(schema).\(table)
                    WHERE series = $1 AND bucket >= $2 AND bucket < $3
                    """, binds: PostgresStorage.binds(series, from, to)), logger: logger)
        var result: [(Int64, RollupPartial)] = []
        for try await row in rows.decode(RollupRow.self) { result.append((row.0, partial(row))) }
        return result
    }

    /// The rollup rows of `series` in `[from, to)` (aligned to `level`): the closed minutes' rows of `level` and
    /// the open minutes' parts (which no hour row holds yet).
    static func rows(
        _ c: PostgresConnection, schema: String, _ level: RollupLevel, series: Int64, from: Int64, to: Int64,
        openFrom: Int64, logger: Logger
    ) async throws -> [(Int64, RollupPartial)] {
        try await rollupRows(
            c, schema: schema, table: level.table, series: series, from: from,
            to: level == .minute ? min(to, openFrom) : to, logger: logger)
            + rollupRows(
                c, schema: schema, table: "rollup_parts", series: series, from: max(from, openFrom), to: to,
                logger: logger)
    }

    /// Recomputes one rollup bucket: a minute from the raw points (a closed one's `rollup_1m` row, an open one's
    /// `rollup_parts` rows), an hour's row from its closed minutes' rows.
    static func recompute(
        _ c: PostgresConnection, schema: String, _ level: RollupLevel, _ key: BucketKey, openFrom: Int64,
        logger: Logger
    ) async throws {
        let (next, overflow) = key.start.addingReportingOverflow(level.millis)
        let end = overflow ? Int64.max : next
        var p = RollupPartial()
        if level == .minute {
            p = try await rawPartial(c, schema: schema, series: key.series, from: key.start, to: end, logger: logger)
        } else {
            for (_, m) in try await rollupRows(
                c, schema: schema, table: "rollup_1m", series: key.series, from: key.start, to: end, logger: logger)
            {
                p.merge(m)
            }
        }
        let table = level == .minute && key.start >= openFrom ? "rollup_parts" : level.table
        if p.count == 0 || table == "rollup_parts" {
            try await c.query(
                PostgresQuery(
                    unsafeSQL: "DELETE FROM \(schema).\(table) WHERE series = $1 AND bucket = $2",
                    binds: PostgresStorage.binds(key.series, key.start)), logger: logger)
        }
        if p.count > 0 {
            try await upsert(
                c, schema: schema, table: table, [(key, p)], table == "rollup_parts" ? .append : .replace,
                logger: logger)
        }
    }

    /// Writes a batch's minute partials (in key order): an open minute's as a row of `rollup_parts` (one `COPY`),
    /// a closed minute's (a late point's) added to its `rollup_1m` row and its hour's `rollup_1h` row. Buckets in
    /// `dirtyMinutes` (values overwritten) and the hours of the closed ones are recomputed instead. The caller
    /// began the transaction with ``lockRollups(_:schema:exclusive:logger:)``.
    ///
    /// - Returns: the tenant's first open minute, read after the lock was taken.
    @discardableResult
    static func writeRollups(
        _ c: PostgresConnection, schema: String, minutes: [(BucketKey, RollupPartial)], dirtyMinutes: Set<BucketKey>,
        logger: Logger
    ) async throws -> Int64 {
        let openFrom = try await openFrom(c, schema: schema, logger: logger)
        var open: [(BucketKey, RollupPartial)] = []
        var closed: [(BucketKey, RollupPartial)] = []
        for m in minutes where !dirtyMinutes.contains(m.0) {
            if m.0.start >= openFrom { open.append(m) } else { closed.append(m) }
        }
        if !open.isEmpty {
            let withText = open.contains { $0.1.first?.isText == true || $0.1.last?.isText == true }
            let columns = rollupColumnNames.filter { withText || !$0.hasSuffix("_txt") }
            try await c.copyFrom(table: "rollup_parts", columns: ["series", "bucket"] + columns, logger: logger) {
                writer in
                var rows = ByteBuffer()
                rows.reserveCapacity(open.count * 120)
                for (key, p) in open { appendCopyRow(&rows, key, p, withText: withText) }
                try await writer.write(rows)
            }
        }
        try await upsert(c, schema: schema, table: "rollup_1m", closed, .add, logger: logger)
        for key in dirtyMinutes.sorted() {
            try await recompute(c, schema: schema, .minute, key, openFrom: openFrom, logger: logger)
        }
        let dirtyHours = Set(
            dirtyMinutes.filter { $0.start < openFrom }.map {
                BucketKey(series: $0.series, start: RollupLevel.hour.bucketStart($0.start))
            })
        try await upsert(
            c, schema: schema, table: "rollup_1h", RollupPartial.hours(of: closed, skipping: dirtyHours), .add,
            logger: logger)
        for key in dirtyHours.sorted() {
            try await recompute(c, schema: schema, .hour, key, openFrom: openFrom, logger: logger)
        }
        return openFrom
    }

    /// After the points of `series` before `time` were deleted: drops the rollup rows and parts wholly before
    /// `time` and recomputes the ones that straddle it.
    static func trimRollups(
        _ c: PostgresConnection, schema: String, series: Int64, before time: Int64, openFrom: Int64,
        logger: Logger
    ) async throws {
        for level in RollupLevel.allCases {
            let (limit, overflow) = time.subtractingReportingOverflow(level.millis)
            if !overflow {
                for table in level == .minute ? ["rollup_1m", "rollup_parts"] : ["rollup_1h"] {
                    try await c.query(
                        PostgresQuery(
                            unsafeSQL: "DELETE FROM \(schema).\(table) WHERE series = $1 AND bucket <= $2",
                            binds: PostgresStorage.binds(series, limit)), logger: logger)
                }
            }
            let start = level.bucketStart(time)
            if start != time {
                try await recompute(
                    c, schema: schema, level, BucketKey(series: series, start: start), openFrom: openFrom,
                    logger: logger)
            }
        }
    }

    // MARK: Closing minutes

    /// The first statement of every transaction that writes points or rollups: the tenant's schema becomes the
    /// search path, for this transaction only (PostgresNIO quotes the table name of a `COPY` as one identifier),
    /// and the transaction takes the lock on the tenant's open minutes. Shared to append (the write reads where
    /// they start and appends parts the closing must see); exclusive to close them (the closing waits for those
    /// writes to commit, and a write after it reads where it moved the start to) and to recompute rows from points
    /// (a merge, a deletion: a concurrent late point could add to a row between the read and the write). Taken
    /// first, before any row lock: a write waiting for it holds nothing another write could wait for.
    static func lockRollups(_ c: PostgresConnection, schema: String, exclusive: Bool, logger: Logger) async throws {
        try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT set_config('search_path', $1, true),
                           pg_advisory_xact_lock\(exclusive ? "" : "_shared")(hashtext($1), \(rollupLockKey))
                    """, binds: PostgresStorage.binds(schema)), logger: logger)
    }

    /// The second key of the rollup lock (the first is the schema's hash).
    static let rollupLockKey = 24_001

    /// The tenant's first open minute: minutes before it have exact `rollup_1m` rows (and their hours' rows hold
    /// them), later ones are the sums of their `rollup_parts` rows.
    static func openFrom(_ c: PostgresConnection, schema: String, logger: Logger) async throws -> Int64 {
        let rows = try await c.query(
            PostgresQuery(unsafeSQL: "SELECT open_from FROM \(schema).rollup_state"), logger: logger)
        var openFrom = RollupLevel.nothingClosed
        for try await m in rows.decode(Int64.self) { openFrom = m }
        return openFrom
    }

    /// The `SELECT` that folds the rollup rows of the CTE `d` into one row per (series, `bucket`), `bucket` being
    /// an expression of a row's bucket: sums and extremes by grouping, first and last values by joining the
    /// rows whose first and last times those are (hash joins: sorting by time was slower). The rows of one
    /// bucket hold disjoint points, so those times are unique; `DISTINCT ON` keeps one row per bucket if not.
    static func fold(bucket: (String) -> String) -> String {
        """
        SELECT DISTINCT ON (a.series, a.b) a.series, a.b, a.count, a.sum, a.min, a.max,
               a.ft, f.first_kind, f.first_num, f.first_txt, a.lt, l.last_kind, l.last_num, l.last_txt
        FROM (
          SELECT series, \(bucket("bucket")) AS b, sum(count)::int8 AS count, sum(sum) AS sum, min(min) AS min,
                 max(max) AS max, min(first_ts) AS ft, max(last_ts) AS lt
          FROM d GROUP BY 1, 2
        ) a
        JOIN d f ON f.series = a.series AND \(bucket("f.bucket")) = a.b AND f.first_ts = a.ft
        JOIN d l ON l.series = a.series AND \(bucket("l.bucket")) = a.b AND l.last_ts = a.lt
        ORDER BY a.series, a.b
        """
    }

    /// Closes every minute that ends at or before `time`, in one transaction under the exclusive rollup lock:
    /// the open minutes' `rollup_parts` rows become their `rollup_1m` rows and are added to their hours'
    /// `rollup_1h` rows, in one statement; the first open minute moves. Returns how many minute rows were built.
    static func close(_ c: PostgresConnection, schema: String, before time: Int64, logger: Logger) async throws
        -> Int
    {
        try await lockRollups(c, schema: schema, exclusive: true, logger: logger)
        let from = try await openFrom(c, schema: schema, logger: logger)
        let end = RollupLevel.minute.bucketStart(time)
        guard end > from else { return 0 }
        let hour = RollupLevel.hour.millis
        // The fold's joins are equi-joins of thousands of rows: a nested loop, which an estimate off by much (the
        // parts are deleted as fast as they come) could pick, would hold the lock for seconds.
        try await c.query("SET LOCAL enable_nestloop = off", logger: logger)
        // No `rollup_1m` row exists at or after the first open minute: the minutes go in without `ON CONFLICT`.
        let rows = try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    WITH d AS (
                      DELETE FROM \(schema).rollup_parts WHERE bucket < $1 RETURNING *
                    ), m AS (
                      INSERT INTO \(schema).rollup_1m(series, bucket, \(rollupColumns))
                      \(fold { $0 })
                      RETURNING 1
                    ), h AS (
                      INSERT INTO \(schema).rollup_1h AS r (series, bucket, \(rollupColumns))
                      \(fold { "\($0) - mod(mod(\($0), \(hour)) + \(hour), \(hour))" })
                      \(conflictClause(.add))
                    )
                    SELECT count(*) FROM m
                    """, binds: PostgresStorage.binds(end)), logger: logger)
        var built = 0
        for try await n in rows.decode(Int64.self) { built = Int(n) }
        try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(schema).rollup_state(id, open_from) VALUES (1, $1)
                    ON CONFLICT (id) DO UPDATE SET open_from = excluded.open_from
                    """, binds: PostgresStorage.binds(end)), logger: logger)
        return built
    }
}
