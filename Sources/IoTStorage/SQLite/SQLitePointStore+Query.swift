public import IoTCore

extension SQLitePointStore {
    /// The latest point of each signal of `device` (all signals when `signals` is `nil`), sorted by signal;
    /// one primary-key seek per series.
    public func latest(_ scope: AccessScope, device: String, signals: [String]?) async throws -> [Point] {
        guard scope.permits(device: device) else { return [] }
        let tenant = try await tenant(scope.tenant)
        let wanted = signals.map(Set.init)
        let points = try await tenant.db.read { conn in
            try conn.readTransaction {
                let list = try conn.statement("SELECT id, signal FROM series WHERE device = ?")
                list.bindText(1, device)
                var series: [(Int64, String)] = []
                while try list.step() {
                    let signal = list.fullText(1)
                    if wanted?.contains(signal) ?? true { series.append((list.int64(0), signal)) }
                }
                list.reset()
                let last = try conn.statement("SELECT ts, value FROM points WHERE series = ? ORDER BY ts DESC LIMIT 1")
                var result: [Point] = []
                for (id, signal) in series {
                    last.bind(1, id)
                    if try last.step() {
                        result.append(
                            Point(device: device, signal: signal, time: last.int64(0), value: last.signalValue(1)))
                    }
                    last.reset()
                }
                return result
            }
        }
        return points.sorted { $0.signal < $1.signal }
    }

    /// One primary-key seek per series (the newest point of each).
    public func newestPointTimes(_ scope: AccessScope) async throws -> [String: Int64] {
        let tenant = try await tenant(scope.tenant)
        let newest = try await tenant.db.read { conn in
            try conn.readTransaction {
                let query = try conn.statement(
                    "SELECT s.device, (SELECT MAX(p.ts) FROM points p WHERE p.series = s.id) FROM series s")
                var newest: [String: Int64] = [:]
                while try query.step() {
                    guard !query.isNull(1) else { continue }
                    let device = query.fullText(0)
                    newest[device] = max(newest[device] ?? .min, query.int64(1))
                }
                return newest
            }
        }
        return newest.filter { scope.permits(device: $0.key) }
    }

    /// Points of one series with `from <= time < to`: one primary-key range scan.
    public func range(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, limit: Int?, order: PointOrder
    ) async throws -> [Point] {
        guard scope.permits(device: series.device), to > from, limit.map({ $0 > 0 }) ?? true else { return [] }
        let tenant = try await tenant(scope.tenant)
        return try await tenant.db.read { conn in
            try conn.readTransaction {
                guard let id = try Self.lookupSeries(series, conn) else { return [] }
                let sql =
                    "SELECT ts, value FROM points WHERE series = ? AND ts >= ? AND ts < ? ORDER BY ts "
                    + (order == .ascending ? "ASC" : "DESC") + " LIMIT ?"
                let s = try conn.statement(sql)
                defer { s.reset() }
                s.bind(1, id)
                s.bind(2, from)
                s.bind(3, to)
                s.bind(4, Int64(limit ?? -1))
                var result: [Point] = []
                while try s.step() {
                    result.append(
                        Point(device: series.device, signal: series.signal, time: s.int64(0), value: s.signalValue(1)))
                }
                return result
            }
        }
    }

    /// Aggregates of one series over `[from, to)` in buckets of `bucketMillis` starting at `from` (one
    /// bucket when `nil`); empty buckets are omitted.
    ///
    /// Each bucket is composed exactly from raw points (its parts that are not whole closed minutes),
    /// `rollup_1m` rows (whole closed minutes) and `rollup_1h` rows (the closed minutes of whole hours), in one
    /// read transaction. Throws ``IoTError/Code/invalidArgument`` when `bucketMillis` is not positive.
    public func aggregate(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, bucketMillis: Int64?
    ) async throws -> [AggregateBucket] {
        guard let plan = try AggregatePlan(from: from, to: to, bucketMillis: bucketMillis),
            scope.permits(device: series.device)
        else { return [] }
        let tenant = try await tenant(scope.tenant)
        return try await tenant.db.read { conn in
            try conn.readTransaction {
                guard let id = try Self.lookupSeries(series, conn) else { return [] }
                return try plan.closed(before: Self.openFrom(conn)).run(conn, series: id)
            }
        }
    }

    /// The id of a series, or `nil` when it was never written (reader side: plain SQL, no cache).
    static func lookupSeries(_ key: SeriesKey, _ conn: SQLiteConnection) throws -> Int64? {
        let s = try conn.statement("SELECT id FROM series WHERE device = ? AND signal = ?")
        defer { s.reset() }
        s.bindText(1, key.device)
        s.bindText(2, key.signal)
        return try s.step() ? s.int64(0) : nil
    }
}

extension AggregatePlan {
    /// Reads the runs and returns the non-empty buckets in time order.
    func run(_ conn: SQLiteConnection, series: Int64) throws -> [AggregateBucket] {
        var parts: [Int64: RollupPartial] = [:]
        if !raw.isEmpty {
            let s = try conn.statement(SQLitePointStore.rawScanSQL)
            for (a, b) in raw {
                s.bind(1, series)
                s.bind(2, a)
                s.bind(3, b)
                while try s.step() {
                    let time = s.int64(0)
                    parts[bucketIndex(time), default: RollupPartial()].add(time: time, value: s.signalValue(1))
                }
                s.reset()
            }
        }
        for (level, runs) in [(RollupLevel.minute, minutes), (.hour, hours)] where !runs.isEmpty {
            let s = try conn.statement(level.sql.select)
            for (a, b) in runs {
                s.bind(1, series)
                s.bind(2, a)
                s.bind(3, b)
                while try s.step() {
                    parts[bucketIndex(s.int64(0)), default: RollupPartial()].merge(
                        SQLitePointStore.partial(fromRollupRow: s))
                }
                s.reset()
            }
        }
        return buckets(parts)
    }
}
