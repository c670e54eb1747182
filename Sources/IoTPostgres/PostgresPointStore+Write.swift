import IoTCore
import Logging
import NIOCore
import PostgresNIO

/// How a ``IoTCore/SignalValue`` is kept in the `kind`, `num` and `txt` columns.
extension SignalValue {
    /// The columns of the value: `kind` 0 number, 1 boolean (`num` 0 or 1), 2 text (UTF-8 bytes).
    var columns: (kind: Int16, num: Double, txt: ByteBuffer) {
        switch self {
        case .number(let v): (0, v, ByteBuffer())
        case .bool(let b): (1, b ? 1 : 0, ByteBuffer())
        case .text(let s): (2, 0, ByteBuffer(string: s))
        }
    }

    /// Whether the value needs the `txt` column.
    var isText: Bool { if case .text = self { true } else { false } }

    /// The value of a row's columns.
    init(kind: Int16, num: Double?, txt: ByteBuffer?) {
        switch kind {
        case 0: self = .number(num ?? .nan)
        case 1: self = .bool((num ?? 0) != 0)
        default: self = .text(txt.map { String(buffer: $0) } ?? "")
        }
    }
}

/// Column arrays of values, for `unnest`.
struct ValueColumns {
    var kinds: [Int16] = []
    var nums: [Double] = []
    var txts: [ByteBuffer] = []

    mutating func append(_ value: SignalValue) {
        let c = value.columns
        kinds.append(c.kind)
        nums.append(c.num)
        txts.append(c.txt)
    }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

extension ByteBuffer {
    /// Writes a value's `kind`, `num` and `txt` columns in `COPY`'s text format, each after a tab; without the
    /// `txt` column (`withText: false`, for a batch with no text value: PostgreSQL parses a field less per row)
    /// unless the value is text.
    mutating func writeCopyValue(_ value: SignalValue, withText: Bool) {
        switch value {
        case .number(let v):
            writeString("\t0\t")
            // Swift's shortest round-trip form; PostgreSQL reads it exactly (and "inf", "-inf", "nan").
            writeString(v.description)
            if withText { writeString("\t\\N") }
        case .bool(let b):
            writeString(b ? "\t1\t1" : "\t1\t0")
            if withText { writeString("\t\\N") }
        case .text(let text):
            // bytea in hex ("\\x…": COPY's text format doubles the backslash).
            writeString("\t2\t\\N\t\\\\x")
            for byte in text.utf8 {
                writeMultipleIntegers(hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)])
            }
        }
    }

    /// Writes `\t` and a double, or `\N` for `nil`.
    mutating func writeCopyDouble(_ value: Double?) {
        writeInteger(UInt8(ascii: "\t"))
        if let value { writeString(value.description) } else { writeString("\\N") }
    }
}

/// Appends one row of `points(series, ts, kind, num[, txt])` in `COPY`'s text format.
private func appendCopyRow(
    _ rows: inout ByteBuffer, series: Int64, time: Int64, value: SignalValue, withText: Bool
) {
    rows.writeString(String(series))
    rows.writeInteger(UInt8(ascii: "\t"))
    rows.writeString(String(time))
    rows.writeCopyValue(value, withText: withText)
    rows.writeInteger(UInt8(ascii: "\n"))
}

/// Appends one row of a rollup table (`series, bucket,` ``PostgresPointStore/rollupColumns``, without the two
/// `txt` columns when `withText` is false) in `COPY`'s text format.
func appendCopyRow(_ rows: inout ByteBuffer, _ key: BucketKey, _ p: RollupPartial, withText: Bool) {
    rows.writeString("\(key.series)\t\(key.start)\t\(p.count)")
    rows.writeCopyDouble(p.sum)
    rows.writeCopyDouble(p.min)
    rows.writeCopyDouble(p.max)
    rows.writeString("\t\(p.firstTime)")
    rows.writeCopyValue(p.first ?? .number(0), withText: withText)
    rows.writeString("\t\(p.lastTime)")
    rows.writeCopyValue(p.last ?? .number(0), withText: withText)
    rows.writeInteger(UInt8(ascii: "\n"))
}

extension PostgresPointStore {
    /// A (series, time): one point's key.
    struct PointKey: Hashable {
        var series: Int64
        var time: Int64
    }

    /// The series id of each point of the batch, in order: one dictionary lookup per point; the series `ids` does
    /// not know are created (`ON CONFLICT DO NOTHING`, so instances may race) and their ids read into `ids`.
    static func seriesIDs(
        _ batch: PointBatch, schema: String, ids: inout [SeriesKey: Int64], _ c: PostgresConnection, logger: Logger
    ) async throws -> [Int64] {
        var result = [Int64](repeating: 0, count: batch.points.count)
        var unknown: [Int] = []
        for (i, p) in batch.points.enumerated() {
            if let id = ids[p.series] { result[i] = id } else { unknown.append(i) }
        }
        guard !unknown.isEmpty else { return result }
        var missing: [SeriesKey] = []
        var seen = Set<SeriesKey>()
        for i in unknown where seen.insert(batch.points[i].series).inserted { missing.append(batch.points[i].series) }
        let devices = missing.map(\.device)
        let signals = missing.map(\.signal)
        try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(schema).series(device, signal)
                    SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING
                    """, binds: PostgresStorage.binds(devices, signals)), logger: logger)
        let rows = try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT s.id, s.device, s.signal FROM \(schema).series s
                    JOIN unnest($1::text[], $2::text[]) AS k(device, signal)
                      ON s.device = k.device AND s.signal = k.signal
                    """, binds: PostgresStorage.binds(devices, signals)), logger: logger)
        for try await (id, device, signal) in rows.decode((Int64, String, String).self) {
            ids[SeriesKey(device: device, signal: signal)] = id
        }
        for i in unknown {
            let series = batch.points[i].series
            guard let id = ids[series] else {
                throw IoTError(.storage, "series \(series) was not created in tenant \(batch.tenant); retry the write")
            }
            result[i] = id
        }
        return result
    }

    /// The body of one write transaction when no point of the batch is stored yet, the usual case: the points
    /// go in with one `COPY` (no `ON CONFLICT`, whose speculative insertion costs PostgreSQL about 1.7× a plain
    /// insert), then the rollups as partials (see ``writeRollups(_:schema:minutes:dirtyMinutes:logger:)``). A
    /// stored point makes the `COPY` fail with a unique violation; the caller then rolls the transaction back and
    /// runs ``apply(_:schema:policy:ids:_:logger:)`` instead.
    ///
    /// - Returns: how many values of the batch replaced a different value of the same (series, time) within it,
    ///   and the tenant's first open minute (`nil` for an empty batch).
    static func applyNew(
        _ batch: PointBatch, schema: String, policy: DuplicatePolicy, ids: inout [SeriesKey: Int64],
        _ c: PostgresConnection, logger: Logger
    ) async throws -> (overwritten: Int, openFrom: Int64?) {
        guard !batch.points.isEmpty else { return (0, nil) }
        try await lockRollups(c, schema: schema, exclusive: false, logger: logger)
        let seriesIDs = try await seriesIDs(batch, schema: schema, ids: &ids, c, logger: logger)
        // In (series, time) order, a key's points in batch order: equal keys are neighbours (no dictionary).
        var keyed: [(series: Int64, time: Int64, index: Int)] = []
        keyed.reserveCapacity(batch.points.count)
        for (i, p) in batch.points.enumerated() { keyed.append((seriesIDs[i], p.time, i)) }
        keyed.sort { ($0.series, $0.time, $0.index) < ($1.series, $1.time, $1.index) }
        var fresh: [(series: Int64, time: Int64, value: SignalValue)] = []
        fresh.reserveCapacity(keyed.count)
        var overwritten = 0
        for k in keyed {
            let value = batch.points[k.index].value
            if let last = fresh.last, last.series == k.series, last.time == k.time {
                if policy == .lastWriteWins && last.value != value {
                    fresh[fresh.count - 1].value = value
                    overwritten += 1
                }
            } else {
                fresh.append((k.series, k.time, value))
            }
        }
        let withText = fresh.contains { $0.value.isText }
        try await c.copyFrom(
            table: "points", columns: ["series", "ts", "kind", "num"] + (withText ? ["txt"] : []), logger: logger
        ) { writer in
            var rows = ByteBuffer()
            rows.reserveCapacity(fresh.count * 40)
            for f in fresh { appendCopyRow(&rows, series: f.series, time: f.time, value: f.value, withText: withText) }
            try await writer.write(rows)
        }
        let openFrom = try await writeRollups(
            c, schema: schema, minutes: RollupPartial.minutes(of: fresh), dirtyMinutes: [], logger: logger)
        return (overwritten, openFrom)
    }

    /// The body of one write transaction when some points of the batch may be stored already.
    ///
    /// 1. The batch's new series are created and their ids read.
    /// 2. Each (series, time) gets the value the policy picks from the batch, inserted with `ON CONFLICT DO
    ///    NOTHING`, in one statement that answers only the keys that were there already.
    /// 3. For those the stored values are read and the batch's values are applied to them in order, as the
    ///    SQLite store does one by one; a changed value is updated and marks its minute (and hour) for
    ///    recomputation.
    /// 4. New points go into the rollups as partials; marked buckets are recomputed (see
    ///    ``writeRollups(_:schema:minutes:dirtyMinutes:logger:)``).
    ///
    /// - Returns: how many stored values the batch replaced with a different one, and the tenant's first
    ///   open minute (`nil` for an empty batch).
    static func apply(
        _ batch: PointBatch, schema: String, policy: DuplicatePolicy, ids: inout [SeriesKey: Int64],
        _ c: PostgresConnection, logger: Logger
    ) async throws -> (overwritten: Int, openFrom: Int64?) {
        guard !batch.points.isEmpty else { return (0, nil) }
        try await lockRollups(c, schema: schema, exclusive: true, logger: logger)
        let seriesIDs = try await seriesIDs(batch, schema: schema, ids: &ids, c, logger: logger)

        var order: [PointKey] = []
        var values: [PointKey: [SignalValue]] = [:]
        for (i, p) in batch.points.enumerated() {
            let key = PointKey(series: seriesIDs[i], time: p.time)
            if values[key] == nil { order.append(key) }
            values[key, default: []].append(p.value)
        }

        // New points: the value the policy keeps of the batch's.
        var chosen = ValueColumns()
        for key in order {
            let v = values[key]!
            chosen.append(policy == .lastWriteWins ? v.last! : v.first!)
        }
        // One statement inserts what is new and answers only the keys that were there already (usually none:
        // a journal replay or a device that sends a time twice), not one row per point.
        var conflicts = Set<PointKey>()
        let conflictRows = try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    WITH u AS (
                      SELECT * FROM unnest($1::int8[], $2::int8[], $3::int2[], $4::float8[], $5::bytea[]) AS u(s, t, k, n, x)
                    ), ins AS (
                      INSERT INTO \(schema).points(series, ts, kind, num, txt)
                      SELECT s, t, k, CASE WHEN k = 2 THEN NULL ELSE n END, CASE WHEN k = 2 THEN x END FROM u
                      ON CONFLICT DO NOTHING RETURNING series, ts
                    )
                    SELECT s, t FROM u EXCEPT ALL SELECT series, ts FROM ins
                    """,
                binds: PostgresStorage.binds(
                    PackedArray(order.map(\.series)), PackedArray(order.map(\.time)), PackedArray(chosen.kinds),
                    PackedArray(chosen.nums), PackedArray(chosen.txts))),
            logger: logger)
        for try await (s, t) in conflictRows.decode((Int64, Int64).self) {
            conflicts.insert(PointKey(series: s, time: t))
        }
        let inserted = Set(order).subtracting(conflicts)

        var stored: [PointKey: SignalValue] = [:]
        let existing = order.filter { conflicts.contains($0) }
        if !existing.isEmpty {
            let rows = try await c.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT p.series, p.ts, p.kind, p.num, p.txt FROM \(schema).points p
                        JOIN unnest($1::int8[], $2::int8[]) AS k(series, ts) ON p.series = k.series AND p.ts = k.ts
                        """, binds: PostgresStorage.binds(existing.map(\.series), existing.map(\.time))),
                logger: logger)
            for try await (s, t, kind, num, txt) in rows.decode((Int64, Int64, Int16, Double?, ByteBuffer?).self) {
                stored[PointKey(series: s, time: t)] = SignalValue(kind: kind, num: num, txt: txt)
            }
        }

        var overwritten = 0
        var updates: [PointKey] = []
        var updated = ValueColumns()
        var dirtyMinutes = Set<BucketKey>()
        var fresh: [(series: Int64, time: Int64, value: SignalValue)] = []
        for key in order {
            let isNew = inserted.contains(key)
            var held: SignalValue? = isNew ? nil : stored[key]
            for v in values[key]! {
                guard let h = held else {
                    held = v
                    continue
                }
                if h != v && policy == .lastWriteWins {
                    held = v
                    overwritten += 1
                }
            }
            if isNew {
                fresh.append((key.series, key.time, held!))
            } else if let h = held, h != stored[key] {
                updates.append(key)
                updated.append(h)
                dirtyMinutes.insert(BucketKey(series: key.series, start: RollupLevel.minute.bucketStart(key.time)))
            }
        }
        if !updates.isEmpty {
            try await c.query(
                PostgresQuery(
                    unsafeSQL: """
                        UPDATE \(schema).points p
                        SET kind = u.k, num = CASE WHEN u.k = 2 THEN NULL ELSE u.n END,
                            txt = CASE WHEN u.k = 2 THEN u.x END
                        FROM unnest($1::int8[], $2::int8[], $3::int2[], $4::float8[], $5::bytea[]) AS u(s, t, k, n, x)
                        WHERE p.series = u.s AND p.ts = u.t
                        """,
                    binds: PostgresStorage.binds(
                        updates.map(\.series), updates.map(\.time), updated.kinds, updated.nums, updated.txts)),
                logger: logger)
        }
        fresh.sort { ($0.series, $0.time) < ($1.series, $1.time) }
        let openFrom = try await writeRollups(
            c, schema: schema, minutes: RollupPartial.minutes(of: fresh), dirtyMinutes: dirtyMinutes, logger: logger)
        return (overwritten, openFrom)
    }
}
