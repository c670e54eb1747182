import IoTCore

extension SQLitePointStore {
    static let insertSQL = "INSERT INTO points(series, ts, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    static let storedSQL = "SELECT value FROM points WHERE series = ? AND ts = ?"
    static let updateSQL = "UPDATE points SET value = ? WHERE series = ? AND ts = ?"
    static let sequenceSQL = """
        INSERT INTO points_meta(key, value) VALUES ('journal_sequence', ?)
        ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)
        """

    /// The body of one write transaction (the caller holds `BEGIN IMMEDIATE`).
    ///
    /// The points are visited in (series, time) order, with batch order kept among points of the same
    /// (series, time), so a later write in the batch still wins. That order keeps the B-tree pages of one
    /// series hot while it is written, and lets the minute partials be accumulated without hashing.
    ///
    /// Fast path: `INSERT … ON CONFLICT DO NOTHING`; a point into an open minute is done (its minute's rows are
    /// built when it closes), a new point into a closed minute is added to its minute's partial. On a
    /// conflict the stored value is compared: equal → nothing; different → the policy decides, and an
    /// overwrite in a closed minute marks the minute (and so its hour) for recomputation from the raw points.
    ///
    /// The journal sequence is stored as `max(stored, sequence)` (clamped to `Int64.max`).
    /// - Returns: how many stored points the batch replaced with a different value.
    @discardableResult
    static func apply(
        _ batch: PointBatch, policy: DuplicatePolicy, tenant: PointTenant, _ conn: SQLiteConnection
    ) throws -> Int {
        var overwritten = 0
        if !batch.points.isEmpty {
            let points = batch.points
            var order: [(series: Int64, time: Int64, index: Int)] = []
            order.reserveCapacity(points.count)
            var lastKey: SeriesKey?
            var lastID: Int64 = 0
            for (index, point) in points.enumerated() {
                if let k = lastKey, k.device == point.device, k.signal == point.signal {
                } else {
                    let key = point.series
                    lastID = try seriesID(key, tenant: tenant, conn)
                    lastKey = key
                }
                order.append((lastID, point.time, index))
            }
            order.sort { ($0.series, $0.time, $0.index) < ($1.series, $1.time, $1.index) }

            let openFrom = try openFrom(tenant, conn)
            let insert = try conn.statement(insertSQL)
            var minutes: [(BucketKey, RollupPartial)] = []
            var dirtyMinutes = Set<BucketKey>()
            var current = BucketKey(series: 0, start: .min)
            var partial = RollupPartial()
            for (id, time, index) in order {
                let value = points[index].value
                insert.bind(1, id)
                insert.bind(2, time)
                insert.bind(3, value)
                try insert.step()
                insert.reset()
                let minute = BucketKey(series: id, start: RollupLevel.minute.bucketStart(time))
                let open = minute.start >= openFrom
                if conn.changes == 1 {
                    if open { continue }
                    if minute != current {
                        if partial.count > 0 { minutes.append((current, partial)) }
                        current = minute
                        partial = RollupPartial()
                    }
                    partial.add(time: time, value: value)
                    continue
                }
                let stored = try conn.statement(storedSQL)
                stored.bind(1, id)
                stored.bind(2, time)
                let old: SignalValue? = try stored.step() ? stored.signalValue(0) : nil
                stored.reset()
                if old == value || policy == .firstWriteWins { continue }
                let update = try conn.statement(updateSQL)
                update.bind(1, value)
                update.bind(2, id)
                update.bind(3, time)
                try update.run()
                update.reset()
                overwritten += 1
                if !open { dirtyMinutes.insert(minute) }
            }
            if partial.count > 0 { minutes.append((current, partial)) }
            try writeRollups(conn, minutes: minutes, dirtyMinutes: dirtyMinutes)
        }
        if batch.journalSequence > 0 {
            let s = try conn.statement(sequenceSQL)
            s.bind(1, Int64(clamping: batch.journalSequence))
            try s.run()
            s.reset()
        }
        return overwritten
    }

    static let openFromSQL = "SELECT value FROM points_meta WHERE key = 'rollup_open_from'"

    /// The tenant's first open minute: the writer's copy, or the committed one.
    static func openFrom(_ tenant: PointTenant, _ conn: SQLiteConnection) throws -> Int64 {
        if let openFrom = tenant.openFrom { return openFrom }
        let openFrom = try openFrom(conn)
        tenant.openFrom = openFrom
        return openFrom
    }

    /// The first open minute in the connection's view.
    static func openFrom(_ conn: SQLiteConnection) throws -> Int64 {
        let s = try conn.statement(openFromSQL)
        defer { s.reset() }
        return try s.step() ? s.int64(0) : RollupLevel.nothingClosed
    }

    /// Closes the minutes that end at or before `time` when the first open minute is before them, in a
    /// transaction of its own (the caller is the writer): each series' points from the first open minute to
    /// there become `rollup_1m` rows and are added to their `rollup_1h` rows, and the first open minute moves.
    /// - Returns: how many minute rows were built.
    @discardableResult
    static func close(_ tenant: PointTenant, before time: Int64, _ conn: SQLiteConnection) throws -> Int {
        let end = RollupLevel.minute.bucketStart(time)
        let from = try openFrom(tenant, conn)
        guard end > from else { return 0 }
        let built: Int
        do {
            built = try conn.transaction {
                let list = try conn.statement("SELECT id FROM series ORDER BY id")
                var ids: [Int64] = []
                while try list.step() { ids.append(list.int64(0)) }
                list.reset()
                var built = 0
                var points: [(series: Int64, time: Int64, value: SignalValue)] = []
                // No minute row exists at or after the first open minute, and an hour's row holds its closed
                // minutes only: the minutes are added as a batch's new points are, a few thousand series'
                // at a time (one statement lookup per level for them, not per series).
                var minutes: [(BucketKey, RollupPartial)] = []
                let scan = try conn.statement(rawScanSQL)
                for id in ids {
                    points.removeAll(keepingCapacity: true)
                    scan.bind(1, id)
                    scan.bind(2, from)
                    scan.bind(3, end)
                    while try scan.step() { points.append((id, scan.int64(0), scan.signalValue(1))) }
                    scan.reset()
                    if points.isEmpty { continue }
                    minutes += RollupPartial.minutes(of: points)
                    if minutes.count >= 4_096 {
                        try writeRollups(conn, minutes: minutes, dirtyMinutes: [])
                        built += minutes.count
                        minutes.removeAll(keepingCapacity: true)
                    }
                }
                try writeRollups(conn, minutes: minutes, dirtyMinutes: [])
                built += minutes.count
                let move = try conn.statement("UPDATE points_meta SET value = ? WHERE key = 'rollup_open_from'")
                move.bind(1, end)
                try move.run()
                move.reset()
                return built
            }
        } catch {
            tenant.openFrom = nil
            throw error
        }
        tenant.openFrom = end
        return built
    }

    /// The id of a series, from the cache, the `series` table, or a new row.
    static func seriesID(_ key: SeriesKey, tenant: PointTenant, _ conn: SQLiteConnection) throws -> Int64 {
        if let id = tenant.seriesIDs[key] { return id }
        let select = try conn.statement("SELECT id FROM series WHERE device = ? AND signal = ?")
        select.bindText(1, key.device)
        select.bindText(2, key.signal)
        let found: Int64? = try select.step() ? select.int64(0) : nil
        select.reset()
        if let found {
            tenant.seriesIDs[key] = found
            return found
        }
        // No `RETURNING`: SQLite runs it as a trigger, which makes the insert a multi-write statement that may
        // abort on the UNIQUE index, so it opens a statement journal (a savepoint, its page bitmap and buffers)
        // and buffers the returned row in an ephemeral table. That cost more than the row, and a device's first
        // message creates ten series. `OR IGNORE` never aborts. The row is new: the lookup above found none, and
        // this writer alone inserts.
        let insert = try conn.statement("INSERT OR IGNORE INTO series(device, signal) VALUES (?, ?)")
        insert.bindText(1, key.device)
        insert.bindText(2, key.signal)
        try insert.run()
        insert.reset()
        guard conn.changes == 1 else {
            throw conn.error(
                0,
                "create series \(key): its unique index has it though the lookup found none; check the file with PRAGMA integrity_check"
            )
        }
        let id = conn.lastInsertRowID
        tenant.seriesIDs[key] = id
        return id
    }
}
