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
    /// Each bucket is composed exactly from raw points (its parts that are not whole minutes),
    /// `rollup_1m` rows (whole minutes) and `rollup_1h` rows (whole hours). Throws
    /// ``IoTError/Code/invalidArgument`` when `bucketMillis` is not positive.
    public func aggregate(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, bucketMillis: Int64?
    ) async throws -> [AggregateBucket] {
        if let b = bucketMillis, b <= 0 {
            throw IoTError(.invalidArgument, "bucketMillis must be positive (got \(b)); pass nil for one bucket")
        }
        guard scope.permits(device: series.device), to > from else { return [] }
        let (span, overflow) = to.subtractingReportingOverflow(from)
        if overflow { throw IoTError(.invalidArgument, "window [\(from), \(to)) is too wide; narrow it") }
        let plan = AggregatePlan(from: from, to: to, width: bucketMillis ?? span)
        let tenant = try await tenant(scope.tenant)
        return try await tenant.db.read { conn in
            try conn.readTransaction {
                guard let id = try Self.lookupSeries(series, conn) else { return [] }
                return try plan.run(conn, series: id)
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

/// Which time ranges of an aggregate query come from raw points, minute rollups and hour rollups.
///
/// Every range lies inside one bucket, and ranges of one level that touch are merged, so each level is
/// read with one query per contiguous run and each row is assigned to its bucket by its time.
struct AggregatePlan: Sendable {
    let from: Int64
    let to: Int64
    let width: Int64
    private(set) var raw: [(Int64, Int64)] = []
    private(set) var minutes: [(Int64, Int64)] = []
    private(set) var hours: [(Int64, Int64)] = []

    /// Above this many buckets the plan is a single raw scan (cost bounded by the points, not buckets).
    static let maxPlannedBuckets: Int64 = 200_000

    init(from: Int64, to: Int64, width: Int64) {
        self.from = from
        self.to = to
        self.width = width
        let span = to - from
        let count = span / width + (span % width == 0 ? 0 : 1)
        let minute = RollupLevel.minute.millis
        let hour = RollupLevel.hour.millis
        guard width >= minute, count <= Self.maxPlannedBuckets else {
            raw = [(from, to)]
            return
        }
        for k in 0..<count {
            let s = from + k * width
            let (next, overflow) = s.addingReportingOverflow(width)
            let e = overflow ? to : min(next, to)
            let m0 = ceilDiv(s, minute) * minute
            let m1 = floorDiv(e, minute) * minute
            if m0 >= m1 {
                Self.add(&raw, s, e)
                continue
            }
            Self.add(&raw, s, m0)
            let h0 = ceilDiv(m0, hour) * hour
            let h1 = floorDiv(m1, hour) * hour
            if h0 < h1 {
                Self.add(&minutes, m0, h0)
                Self.add(&hours, h0, h1)
                Self.add(&minutes, h1, m1)
            } else {
                Self.add(&minutes, m0, m1)
            }
            Self.add(&raw, m1, e)
        }
    }

    private static func add(_ runs: inout [(Int64, Int64)], _ a: Int64, _ b: Int64) {
        guard a < b else { return }
        if let last = runs.last, last.1 == a {
            runs[runs.count - 1].1 = b
        } else {
            runs.append((a, b))
        }
    }

    private func bucketIndex(_ time: Int64) -> Int64 { (time - from) / width }

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
            let s = try conn.statement(level.selectSQL)
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
        return parts.keys.sorted().map { k in
            let start = from + k * width
            let (next, overflow) = start.addingReportingOverflow(width)
            return parts[k]!.bucket(start: start, end: overflow ? to : min(next, to))
        }
    }
}
