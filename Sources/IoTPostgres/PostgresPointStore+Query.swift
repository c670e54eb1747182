public import IoTCore
import Logging
import NIOCore
import PostgresNIO

extension PostgresPointStore {
    /// The latest point of each signal of `device` (all signals when `signals` is `nil`), sorted by signal; one
    /// index seek per series.
    public func latest(_ scope: AccessScope, device: String, signals: [String]?) async throws -> [Point] {
        guard scope.permits(device: device) else { return [] }
        let schema = try await schema(scope.tenant)
        let wanted = signals.map(Set.init)
        return try await storage.mapErrors("read the latest points of \(device)") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT s.signal, p.ts, p.kind, p.num, p.txt FROM \(schema).series s
                        CROSS JOIN LATERAL (
                          SELECT ts, kind, num, txt FROM \(schema).points WHERE series = s.id ORDER BY ts DESC LIMIT 1
                        ) p
                        WHERE s.device = $1
                        """, binds: PostgresStorage.binds(device)), logger: logger)
            var result: [Point] = []
            for try await (signal, ts, kind, num, txt) in rows.decode(
                (String, Int64, Int16, Double?, ByteBuffer?).self) where wanted?.contains(signal) ?? true
            {
                result.append(
                    Point(device: device, signal: signal, time: ts, value: SignalValue(kind: kind, num: num, txt: txt)))
            }
            return result.sorted { $0.signal < $1.signal }
        }
    }

    /// The newest point time of each device in `scope`: one index seek per series.
    public func newestPointTimes(_ scope: AccessScope) async throws -> [String: Int64] {
        let schema = try await schema(scope.tenant)
        return try await storage.mapErrors("read the newest point times of tenant \(scope.tenant)") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT s.device, max(p.ts) FROM \(schema).series s
                        CROSS JOIN LATERAL (
                          SELECT ts FROM \(schema).points WHERE series = s.id ORDER BY ts DESC LIMIT 1
                        ) p
                        GROUP BY s.device
                        """), logger: logger)
            var newest: [String: Int64] = [:]
            for try await (device, ts) in rows.decode((String, Int64).self) where scope.permits(device: device) {
                newest[device] = ts
            }
            return newest
        }
    }

    /// Points of one series with `from <= time < to`: one index range scan.
    public func range(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, limit: Int?, order: PointOrder
    ) async throws -> [Point] {
        guard scope.permits(device: series.device), to > from, limit.map({ $0 > 0 }) ?? true else { return [] }
        let schema = try await schema(scope.tenant)
        var sql = """
            SELECT p.ts, p.kind, p.num, p.txt FROM \(schema).points p
            JOIN \(schema).series s ON s.id = p.series
            WHERE s.device = $1 AND s.signal = $2 AND p.ts >= $3 AND p.ts < $4
            ORDER BY p.ts \(order == .ascending ? "ASC" : "DESC")
            """
        if let limit { sql += " LIMIT \(limit)" }
        return try await storage.mapErrors("read points of \(series)") {
            let rows = try await storage.client.query(
                PostgresQuery(unsafeSQL: sql, binds: PostgresStorage.binds(series.device, series.signal, from, to)),
                logger: logger)
            var result: [Point] = []
            for try await (ts, kind, num, txt) in rows.decode((Int64, Int16, Double?, ByteBuffer?).self) {
                result.append(
                    Point(
                        device: series.device, signal: series.signal, time: ts,
                        value: SignalValue(kind: kind, num: num, txt: txt)))
            }
            return result
        }
    }

    /// Aggregates of one series over `[from, to)` in buckets of `bucketMillis` starting at `from` (one bucket
    /// when `nil`); empty buckets are omitted.
    ///
    /// Each bucket is composed exactly from raw points (its parts that are not whole minutes), minute rollups and
    /// hour rollups (with the open minutes' parts), read in one repeatable-read transaction. Throws ``IoTCore/IoTError/Code/invalidArgument``
    /// when `bucketMillis` is not positive.
    public func aggregate(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, bucketMillis: Int64?
    ) async throws -> [AggregateBucket] {
        guard let plan = try AggregatePlan(from: from, to: to, bucketMillis: bucketMillis),
            scope.permits(device: series.device)
        else { return [] }
        let schema = try await schema(scope.tenant)
        let logger = self.logger
        return try await storage.mapErrors("aggregate \(series)") {
            try await storage.client.withTransaction(logger: logger) { c in
                try await c.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
                let rows = try await c.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT id, (SELECT open_from FROM \(schema).rollup_state) FROM \(schema).series
                            WHERE device = $1 AND signal = $2
                            """, binds: PostgresStorage.binds(series.device, series.signal)), logger: logger)
                var found: (id: Int64, openFrom: Int64?)?
                for try await v in rows.decode((Int64, Int64?).self) { found = v }
                guard let (id, storedOpenFrom) = found else { return [] }
                var parts: [Int64: RollupPartial] = [:]
                for (a, b) in plan.raw {
                    let rows = try await c.query(
                        PostgresQuery(
                            unsafeSQL: """
                                SELECT ts, kind, num, txt FROM \(schema).points
                                WHERE series = $1 AND ts >= $2 AND ts < $3 ORDER BY ts
                                """, binds: PostgresStorage.binds(id, a, b)), logger: logger)
                    for try await (ts, kind, num, txt) in rows.decode((Int64, Int16, Double?, ByteBuffer?).self) {
                        parts[plan.bucketIndex(ts), default: RollupPartial()].add(
                            time: ts, value: SignalValue(kind: kind, num: num, txt: txt))
                    }
                }
                // The open minutes' parts are added to the closed minutes' and hours' rows.
                let openFrom = storedOpenFrom ?? RollupLevel.nothingClosed
                for (level, runs) in [(RollupLevel.minute, plan.minutes), (.hour, plan.hours)] {
                    for (a, b) in runs {
                        for (start, p) in try await Self.rows(
                            c, schema: schema, level, series: id, from: a, to: b, openFrom: openFrom, logger: logger)
                        {
                            parts[plan.bucketIndex(start), default: RollupPartial()].merge(p)
                        }
                    }
                }
                return plan.buckets(parts)
            }
        }
    }
}
