import Foundation
public import IoTCore
import PostgresNIO

/// A ``IoTCore/StatisticsStore`` in PostgreSQL: one row per (job, fire time) in each tenant's schema, so a fire
/// stored by one instance is seen by all.
///
/// Table (component `statistics`): `statistics(job_id, fire_time, window_start, window_end, "values")`, primary
/// key `(job_id, fire_time)`, the values as JSON text; `statistics_claims(job_id, fire_time, instance,
/// claimed_at)`, one row per scheduled fire that an instance claimed (``claimFire(_:jobID:fireTime:)``).
public final class PostgresStatisticsStore: StatisticsStore {
    let storage: PostgresStorage
    let instanceID: String
    /// How long a claim holds before another instance may take the fire over (when its result is not stored).
    public let claimLease: Duration

    /// Creates a statistics store on `storage`; the tables are created on each tenant's first use. `instanceID`
    /// names this instance in the claims of the fires it runs; a fire claimed more than `claimLease` ago whose
    /// result is not stored (its claimer died or failed) may be claimed again. Default 60 s: longer than any
    /// fire should take, since a fire still running when its lease ends may run twice.
    public init(storage: PostgresStorage, instanceID: String = "iotd", claimLease: Duration = .seconds(60)) {
        self.storage = storage
        self.instanceID = instanceID
        self.claimLease = claimLease
    }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.statistics(
          job_id text NOT NULL, fire_time bigint NOT NULL, window_start bigint NOT NULL, window_end bigint NOT NULL,
          "values" text NOT NULL, PRIMARY KEY(job_id, fire_time));
        CREATE TABLE IF NOT EXISTS {schema}.statistics_claims(
          job_id text NOT NULL, fire_time bigint NOT NULL, instance text NOT NULL, claimed_at bigint NOT NULL,
          PRIMARY KEY(job_id, fire_time))
        """

    func schema(_ tenant: TenantID) async throws -> String {
        try await storage.schema(of: tenant, component: "statistics", version: 2, Self.ddl)
    }

    /// Claims a scheduled fire for this instance: one `INSERT … ON CONFLICT`, so of several instances that
    /// schedule the same job exactly one runs each fire. A claim older than ``claimLease`` (by the server's clock)
    /// whose result is not stored is taken over: the fire of an instance that died after claiming it still runs.
    public func claimFire(_ scope: AccessScope, jobID: String, fireTime: Int64) async throws -> Bool {
        let schema = try await schema(scope.tenant)
        let lease = claimLease.inMilliseconds
        return try await storage.mapErrors("claim fire \(fireTime) of statistics job \(jobID)") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(schema).statistics_claims AS c(job_id, fire_time, instance, claimed_at)
                        VALUES ($1, $2, $3, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                        ON CONFLICT (job_id, fire_time) DO UPDATE
                        SET instance = excluded.instance, claimed_at = excluded.claimed_at
                        WHERE c.claimed_at < excluded.claimed_at - $4 AND NOT EXISTS (
                          SELECT 1 FROM \(schema).statistics s
                          WHERE s.job_id = excluded.job_id AND s.fire_time = excluded.fire_time)
                        RETURNING 1
                        """,
                    binds: PostgresStorage.binds(jobID, fireTime, instanceID, lease)),
                logger: storage.logger)
            var claimed = false
            for try await _ in rows.decode(Int.self) { claimed = true }
            return claimed
        }
    }

    /// Stores (or replaces) the result of one fire.
    public func save(_ scope: AccessScope, _ result: StatisticsResult) async throws {
        let schema = try await schema(scope.tenant)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let values = String(decoding: try encoder.encode(result.values), as: UTF8.self)
        try await storage.execute(
            "save statistics of job \(result.jobID)",
            """
            INSERT INTO \(schema).statistics(job_id, fire_time, window_start, window_end, "values")
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (job_id, fire_time) DO UPDATE SET window_start = excluded.window_start,
              window_end = excluded.window_end, "values" = excluded."values"
            """,
            PostgresStorage.binds(result.jobID, result.fireTime, result.windowStart, result.windowEnd, values))
    }

    /// The results of `jobID` with `from <= fireTime < to`, oldest first.
    public func results(_ scope: AccessScope, jobID: String, from: Int64, to: Int64) async throws -> [StatisticsResult]
    {
        guard from < to else { return [] }
        let schema = try await schema(scope.tenant)
        return try await storage.mapErrors("read statistics of job \(jobID)") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT fire_time, window_start, window_end, "values" FROM \(schema).statistics
                        WHERE job_id = $1 AND fire_time >= $2 AND fire_time < $3 ORDER BY fire_time
                        """, binds: PostgresStorage.binds(jobID, from, to)), logger: storage.logger)
            var result: [StatisticsResult] = []
            for try await (fire, start, end, values) in rows.decode((Int64, Int64, Int64, String).self) {
                result.append(
                    StatisticsResult(
                        jobID: jobID, fireTime: fire, windowStart: start, windowEnd: end,
                        values: try JSONDecoder().decode([String: SignalValue].self, from: Data(values.utf8))))
            }
            return result
        }
    }

    /// The latest fire time stored for `jobID`, or `nil`.
    public func lastFireTime(_ scope: AccessScope, jobID: String) async throws -> Int64? {
        let schema = try await schema(scope.tenant)
        return try await storage.mapErrors("read the last fire of job \(jobID)") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT max(fire_time) FROM \(schema).statistics WHERE job_id = $1",
                    binds: PostgresStorage.binds(jobID)), logger: storage.logger)
            var last: Int64?
            for try await v in rows.decode(Int64?.self) { last = v }
            return last
        }
    }
}
