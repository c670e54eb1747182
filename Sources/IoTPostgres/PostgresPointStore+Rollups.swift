import IoTCore
import Logging
import NIOCore
import PostgresNIO

extension RollupLevel {
    var table: String { self == .minute ? "rollup_1m" : "rollup_1h" }
}

extension PostgresPointStore {
    /// The columns of a rollup row after its key, as `SELECT`ed by the queries here.
    static let rollupColumns =
        "count, sum, min, max, first_ts, first_kind, first_num, first_txt, last_ts, last_kind, last_num, last_txt"

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

    /// Writes rollup rows: added to the stored ones (`replace: false`: exact for count, sum, min, max, first and
    /// last) or replacing them (`replace: true`, recomputed rows).
    static func upsert(
        _ c: PostgresConnection, schema: String, _ level: RollupLevel, _ rows: [(BucketKey, RollupPartial)],
        replace: Bool, logger: Logger
    ) async throws {
        guard !rows.isEmpty else { return }
        var first = ValueColumns()
        var last = ValueColumns()
        for (_, p) in rows {
            first.append(p.first ?? .number(0))
            last.append(p.last ?? .number(0))
        }
        let table = "\(schema).\(level.table)"
        let merge =
            replace
            ? """
            count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
            first_ts = excluded.first_ts, first_kind = excluded.first_kind, first_num = excluded.first_num,
            first_txt = excluded.first_txt, last_ts = excluded.last_ts, last_kind = excluded.last_kind,
            last_num = excluded.last_num, last_txt = excluded.last_txt
            """
            : """
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
        let sql = """
            INSERT INTO \(table) AS r (series, bucket, \(rollupColumns))
            SELECT s, b, n, CASE WHEN h THEN su END, CASE WHEN h THEN mi END, CASE WHEN h THEN ma END,
                   ft, fk, CASE WHEN fk = 2 THEN NULL ELSE fn END, CASE WHEN fk = 2 THEN fx END,
                   lt, lk, CASE WHEN lk = 2 THEN NULL ELSE ln END, CASE WHEN lk = 2 THEN lx END
            FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::bool[], $5::float8[], $6::float8[], $7::float8[],
                        $8::int8[], $9::int2[], $10::float8[], $11::bytea[],
                        $12::int8[], $13::int2[], $14::float8[], $15::bytea[])
              AS u(s, b, n, h, su, mi, ma, ft, fk, fn, fx, lt, lk, ln, lx)
            ON CONFLICT (series, bucket) DO UPDATE SET \(merge)
            """
        try await c.query(
            PostgresQuery(
                unsafeSQL: sql,
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

    /// The rows of `level` for `series` in `[from, to)`, by bucket start.
    static func rollupRows(
        _ c: PostgresConnection, schema: String, _ level: RollupLevel, series: Int64, from: Int64, to: Int64,
        logger: Logger
    ) async throws -> [(Int64, RollupPartial)] {
        let rows = try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT bucket, \(rollupColumns) FROM \(schema).\(level.table)
                    WHERE series = $1 AND bucket >= $2 AND bucket < $3
                    """, binds: PostgresStorage.binds(series, from, to)), logger: logger)
        var result: [(Int64, RollupPartial)] = []
        for try await row in rows.decode(RollupRow.self) { result.append((row.0, partial(row))) }
        return result
    }

    /// Recomputes one rollup row: a minute from the raw points, an hour from its (already exact) minutes.
    static func recompute(
        _ c: PostgresConnection, schema: String, _ level: RollupLevel, _ key: BucketKey, logger: Logger
    ) async throws {
        let (next, overflow) = key.start.addingReportingOverflow(level.millis)
        let end = overflow ? Int64.max : next
        var p = RollupPartial()
        if level == .minute {
            p = try await rawPartial(c, schema: schema, series: key.series, from: key.start, to: end, logger: logger)
        } else {
            for (_, m) in try await rollupRows(
                c, schema: schema, .minute, series: key.series, from: key.start, to: end, logger: logger)
            {
                p.merge(m)
            }
        }
        if p.count == 0 {
            try await c.query(
                PostgresQuery(
                    unsafeSQL: "DELETE FROM \(schema).\(level.table) WHERE series = $1 AND bucket = $2",
                    binds: PostgresStorage.binds(key.series, key.start)), logger: logger)
        } else {
            try await upsert(c, schema: schema, level, [(key, p)], replace: true, logger: logger)
        }
    }

    /// Writes a batch's minute partials (in key order) and the hours they add to; buckets in `dirtyMinutes`
    /// (values overwritten) and their hours are recomputed instead.
    static func writeRollups(
        _ c: PostgresConnection, schema: String, minutes: [(BucketKey, RollupPartial)], dirtyMinutes: Set<BucketKey>,
        logger: Logger
    ) async throws {
        let dirtyHours = Set(
            dirtyMinutes.map { BucketKey(series: $0.series, start: RollupLevel.hour.bucketStart($0.start)) })
        try await upsert(
            c, schema: schema, .minute, minutes.filter { !dirtyMinutes.contains($0.0) }, replace: false, logger: logger)
        for key in dirtyMinutes.sorted() { try await recompute(c, schema: schema, .minute, key, logger: logger) }
        try await upsert(
            c, schema: schema, .hour, RollupPartial.hours(of: minutes, skipping: dirtyHours), replace: false,
            logger: logger)
        for key in dirtyHours.sorted() { try await recompute(c, schema: schema, .hour, key, logger: logger) }
    }

    /// After the points of `series` before `time` were deleted: drops the rollup rows wholly before `time` and
    /// recomputes the ones that straddle it.
    static func trimRollups(
        _ c: PostgresConnection, schema: String, series: Int64, before time: Int64, logger: Logger
    ) async throws {
        for level in RollupLevel.allCases {
            let (limit, overflow) = time.subtractingReportingOverflow(level.millis)
            if !overflow {
                try await c.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(schema).\(level.table) WHERE series = $1 AND bucket <= $2",
                        binds: PostgresStorage.binds(series, limit)), logger: logger)
            }
            let start = level.bucketStart(time)
            if start != time {
                try await recompute(
                    c, schema: schema, level, BucketKey(series: series, start: start), logger: logger)
            }
        }
    }
}
