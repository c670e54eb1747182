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
    /// Fast path: `INSERT … ON CONFLICT DO NOTHING`; a new point is added to its minute's in-memory
    /// partial. On a conflict the stored value is compared: equal → nothing; different → the policy
    /// decides, and an overwrite marks the minute (and so its hour) for recomputation.
    static func apply(
        _ batch: PointBatch, policy: DuplicatePolicy, tenant: PointTenant, _ conn: SQLiteConnection
    ) throws {
        if !batch.points.isEmpty {
            let insert = try conn.statement(insertSQL)
            var minutes: [BucketKey: RollupPartial] = [:]
            var dirtyMinutes = Set<BucketKey>()
            var lastKey: SeriesKey?
            var lastID: Int64 = 0
            for point in batch.points {
                let id: Int64
                if let k = lastKey, k.device == point.device, k.signal == point.signal {
                    id = lastID
                } else {
                    let key = point.series
                    id = try seriesID(key, tenant: tenant, conn)
                    lastKey = key
                    lastID = id
                }
                insert.bind(1, id)
                insert.bind(2, point.time)
                insert.bind(3, point.value)
                try insert.step()
                insert.reset()
                let minute = BucketKey(series: id, start: RollupLevel.minute.bucketStart(point.time))
                if conn.changes == 1 {
                    minutes[minute, default: RollupPartial()].add(time: point.time, value: point.value)
                    continue
                }
                let stored = try conn.statement(storedSQL)
                stored.bind(1, id)
                stored.bind(2, point.time)
                let old: SignalValue? = try stored.step() ? stored.signalValue(0) : nil
                stored.reset()
                if old == point.value || policy == .firstWriteWins { continue }
                let update = try conn.statement(updateSQL)
                update.bind(1, point.value)
                update.bind(2, id)
                update.bind(3, point.time)
                try update.run()
                update.reset()
                dirtyMinutes.insert(minute)
            }
            try writeRollups(conn, minutes: minutes, dirtyMinutes: dirtyMinutes)
        }
        if batch.journalSequence > 0 {
            let s = try conn.statement(sequenceSQL)
            s.bind(1, Int64(clamping: batch.journalSequence))
            try s.run()
            s.reset()
        }
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
        let insert = try conn.statement("INSERT INTO series(device, signal) VALUES (?, ?) RETURNING id")
        insert.bindText(1, key.device)
        insert.bindText(2, key.signal)
        guard try insert.step() else { throw conn.error(0, "create series \(key)") }
        let id = insert.int64(0)
        insert.reset()
        tenant.seriesIDs[key] = id
        return id
    }
}
