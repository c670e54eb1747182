public import IoTCore

/// The default ``StatisticsStore``: one row per (job, fire time) in each tenant's database.
///
/// ```swift
/// let stats = SQLiteStatisticsStore(storage: storage)
/// try await stats.save(.tenant("acme"), StatisticsResult(jobID: "daily-kwh", fireTime: fire,
///     windowStart: fire - 86_400_000, windowEnd: fire, values: ["total": .number(412.5)]))
/// let last = try await stats.lastFireTime(.tenant("acme"), jobID: "daily-kwh")
/// ```
///
/// Schema: `statistics(job_id, fire_time, window_start, window_end, "values")`, primary key
/// `(job_id, fire_time)`, the values as JSON.
public final class SQLiteStatisticsStore: StatisticsStore {
    private let databases: PreparedDatabases

    /// Creates a statistics store on `storage`; the table is created on first use in each tenant.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "statistics", version: 1, schema: Self.schema)
    }

    private static let schema = """
        CREATE TABLE IF NOT EXISTS statistics(
            job_id TEXT NOT NULL,
            fire_time INTEGER NOT NULL,
            window_start INTEGER NOT NULL,
            window_end INTEGER NOT NULL,
            "values" TEXT NOT NULL,
            PRIMARY KEY (job_id, fire_time)
        ) WITHOUT ROWID;
        """

    private func db(_ scope: AccessScope) async throws -> SQLiteDatabase {
        try await databases.tenant(scope.tenant)
    }

    public func save(_ scope: AccessScope, _ result: StatisticsResult) async throws {
        let values = try StoreJSON.encode(result.values)
        try await db(scope).write { c in
            let s = try c.statement(
                """
                INSERT INTO statistics(job_id, fire_time, window_start, window_end, "values") VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(job_id, fire_time) DO UPDATE SET window_start = excluded.window_start,
                    window_end = excluded.window_end, "values" = excluded."values"
                """)
            s.bind(1, result.jobID)
            s.bind(2, result.fireTime)
            s.bind(3, result.windowStart)
            s.bind(4, result.windowEnd)
            s.bind(5, values)
            try s.run()
        }
    }

    public func results(_ scope: AccessScope, jobID: String, from: Int64, to: Int64) async throws -> [StatisticsResult]
    {
        guard from < to else { return [] }
        return try await db(scope).read { c in
            let s = try c.statement(
                """
                SELECT job_id, fire_time, window_start, window_end, "values" FROM statistics
                WHERE job_id = ? AND fire_time >= ? AND fire_time < ? ORDER BY fire_time
                """)
            defer { s.reset() }
            s.bind(1, jobID)
            s.bind(2, from)
            s.bind(3, to)
            var result: [StatisticsResult] = []
            while try s.step() {
                result.append(
                    StatisticsResult(
                        jobID: s.string(0), fireTime: s.int64(1), windowStart: s.int64(2), windowEnd: s.int64(3),
                        values: try StoreJSON.decode([String: SignalValue].self, from: s.string(4))))
            }
            return result
        }
    }

    public func lastFireTime(_ scope: AccessScope, jobID: String) async throws -> Int64? {
        try await db(scope).read { c in
            let s = try c.statement("SELECT max(fire_time) FROM statistics WHERE job_id = ?")
            defer { s.reset() }
            s.bind(1, jobID)
            return try s.step() ? s.optionalInt64(0) : nil
        }
    }
}
