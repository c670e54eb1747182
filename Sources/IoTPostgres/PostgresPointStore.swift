public import IoTCore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// A ``IoTCore/PointStore`` in PostgreSQL: points, their rollups and each instance's journal watermark in the
/// tenant's schema, for several `iotd` instances on one database.
///
/// ```swift
/// let points = PostgresPointStore(storage: storage, configuration: .init(instanceID: "iotd-1"))
/// try await points.write(PointBatch(tenant: "acme", points: batch, journalSequence: 42))
/// ```
///
/// ## Tables (component `points`)
/// - `series(id, device, signal)`; points refer to the id.
/// - `points(series, ts, kind, num, txt)`, primary key `(series, ts)`: `kind` 0 number, 1 boolean (`num` 0 or
///   1), 2 text (`txt`, UTF-8 bytes as `bytea`, so any string round-trips, NUL characters included).
/// - `rollup_1m`, `rollup_1h`: count, sum, min, max, first and last per (series, minute / hour), written in the
///   same transaction as the points, as the SQLite store does; aggregates read them the same way.
/// - `watermarks(instance, sequence)`: the journal sequence each instance committed. The journal stays local
///   to each instance; a batch and its instance's watermark commit together, so a `kill -9` loses nothing
///   and replays nothing twice.
///
/// ## Duplicates
/// At most one point per (series, time), with the same ``IoTCore/DuplicatePolicy`` as the SQLite store.
public final class PostgresPointStore: PointStore {
    /// The instance and the duplicate policy.
    public struct Configuration: Sendable, Hashable {
        /// The instance whose journal watermark the store keeps (`cluster.instanceID` in iotd.yaml). Default
        /// `local`.
        public var instanceID: String
        /// What a different value at a stored (series, time) does. Default ``IoTCore/DuplicatePolicy/lastWriteWins``.
        public var duplicatePolicy: DuplicatePolicy

        /// Creates a configuration; every parameter has its documented default.
        public init(instanceID: String = "local", duplicatePolicy: DuplicatePolicy = .lastWriteWins) {
            self.instanceID = instanceID
            self.duplicatePolicy = duplicatePolicy
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    let storage: PostgresStorage
    /// Committed series ids by tenant, with the tenant's generation they belong to (a deleted tenant's ids go).
    private let seriesIDs = Mutex<[TenantID: (generation: Int, ids: [SeriesKey: Int64])]>([:])
    /// Per tenant, how many more batches are written with the merge (a recent batch met stored points).
    private let mergeBatchesLeft = Mutex<[TenantID: Int]>([:])

    /// Creates a store on `storage`; each tenant's tables are created on its first use.
    public init(storage: PostgresStorage, configuration: Configuration = Configuration()) {
        self.storage = storage
        self.configuration = configuration
    }

    static let schemaVersion = 1
    /// The table of one rollup level (the same columns at both). Its pages are kept half full, so that the
    /// updates of a bucket's row (each batch adds to it) are heap-only tuples, with no new index entry: about
    /// 30 % less work per rollup update, measured on PostgreSQL 15.
    static func rollupDDL(_ level: RollupLevel) -> String {
        """
        CREATE TABLE IF NOT EXISTS {schema}.\(level.table)(
          series bigint NOT NULL, bucket bigint NOT NULL, count bigint NOT NULL,
          sum double precision, min double precision, max double precision,
          first_ts bigint NOT NULL, first_kind smallint NOT NULL, first_num double precision, first_txt bytea,
          last_ts bigint NOT NULL, last_kind smallint NOT NULL, last_num double precision, last_txt bytea,
          PRIMARY KEY(series, bucket)) WITH (fillfactor = 50);

        """
    }
    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.series(
          id bigserial PRIMARY KEY, device text NOT NULL, signal text NOT NULL, UNIQUE(device, signal));
        CREATE TABLE IF NOT EXISTS {schema}.points(
          series bigint NOT NULL, ts bigint NOT NULL, kind smallint NOT NULL, num double precision, txt bytea,
          PRIMARY KEY(series, ts));
        \(RollupLevel.allCases.map(rollupDDL).joined())
        CREATE TABLE IF NOT EXISTS {schema}.watermarks(instance text PRIMARY KEY, sequence bigint NOT NULL)
        """

    /// The tenant's quoted schema with the tables created.
    func schema(_ tenant: TenantID) async throws -> String {
        try await storage.schema(of: tenant, component: "points", version: Self.schemaVersion, Self.ddl)
    }

    var logger: Logger { storage.logger }

    // MARK: PointStore

    /// Commits the batch, its rollups and this instance's journal watermark in one transaction.
    public func write(_ batch: PointBatch) async throws {
        _ = try await writeReporting(batch)
    }

    /// ``write(_:)``, counting the stored points the batch replaced with a different value.
    public func writeReporting(_ batch: PointBatch) async throws -> PointWriteSummary {
        if batch.points.isEmpty && batch.journalSequence == 0 { return PointWriteSummary() }
        let schema = try await schema(batch.tenant)
        let generation = storage.generation(of: batch.tenant)
        let known = seriesIDs.withLock {
            $0[batch.tenant].flatMap { $0.generation == generation ? $0.ids : nil } ?? [:]
        }
        // A batch is written as new unless a recent batch of the tenant met stored points (a replay, a device
        // that sends a time twice): then straight away with the merge, rather than failing first.
        let merging = mergeBatchesLeft.withLock { left -> Bool in
            guard let n = left[batch.tenant] else { return false }
            left[batch.tenant] = n > 1 ? n - 1 : nil
            return true
        }
        do {
            let (overwritten, ids) = try await storage.mapErrors("write points of tenant \(batch.tenant)") {
                if !merging {
                    do {
                        return try await transaction(batch, schema: schema, known: known, merge: false)
                    } catch  where PostgresStorage.isUniqueViolation(error) {
                        mergeBatchesLeft.withLock { $0[batch.tenant] = Self.mergeBatchesAfterConflict }
                    }
                }
                return try await transaction(batch, schema: schema, known: known, merge: true)
            }
            seriesIDs.withLock { $0[batch.tenant] = (generation, ids) }
            return PointWriteSummary(overwritten: overwritten)
        } catch {
            // Series created in a rolled-back transaction do not exist; the cache is read again.
            seriesIDs.withLock { $0[batch.tenant] = nil }
            throw error
        }
    }

    /// How many batches of a tenant are written with the merge after one met a stored point.
    static let mergeBatchesAfterConflict = 16

    /// One write transaction: the points (as new, or merged with stored ones), their rollups and the journal
    /// watermark. Returns the overwritten count and the series ids known after it.
    private func transaction(_ batch: PointBatch, schema: String, known: [SeriesKey: Int64], merge: Bool)
        async throws -> (Int, [SeriesKey: Int64])
    {
        let policy = configuration.duplicatePolicy
        let instance = configuration.instanceID
        let logger = self.logger
        return try await storage.client.withTransaction(logger: logger) { c in
            var ids = known
            let overwritten =
                merge
                ? try await Self.apply(batch, schema: schema, policy: policy, ids: &ids, c, logger: logger)
                : try await Self.applyNew(batch, schema: schema, policy: policy, ids: &ids, c, logger: logger)
            if batch.journalSequence > 0 {
                try await c.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(schema).watermarks(instance, sequence) VALUES ($1, $2)
                            ON CONFLICT (instance) DO UPDATE
                            SET sequence = greatest(\(schema).watermarks.sequence, excluded.sequence)
                            """,
                        binds: PostgresStorage.binds(instance, Int64(clamping: batch.journalSequence))),
                    logger: logger)
            }
            return (overwritten, ids)
        }
    }

    /// The highest journal sequence this instance committed for `tenant` (0 when none).
    public func committedSequence(tenant: TenantID) async throws -> UInt64 {
        let schema = try await schema(tenant)
        return try await storage.mapErrors("read the journal watermark of tenant \(tenant)") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT sequence FROM \(schema).watermarks WHERE instance = $1",
                    binds: PostgresStorage.binds(configuration.instanceID)), logger: logger)
            var sequence: UInt64 = 0
            for try await s in rows.decode(Int64.self) { sequence = UInt64(max(0, s)) }
            return sequence
        }
    }

    /// Deletes the points before `time` of the devices in `scope` and trims their rollups so aggregates stay
    /// exact; returns how many points were deleted.
    @discardableResult
    public func deletePoints(_ scope: AccessScope, before time: Int64) async throws -> Int {
        let schema = try await schema(scope.tenant)
        let logger = self.logger
        return try await storage.mapErrors("delete points of tenant \(scope.tenant)") {
            try await storage.client.withTransaction(logger: logger) { c in
                var ids: [Int64] = []
                for try await (id, device) in try await c.query(
                    PostgresQuery(unsafeSQL: "SELECT id, device FROM \(schema).series ORDER BY id"), logger: logger
                ).decode((Int64, String).self) where scope.permits(device: device) {
                    ids.append(id)
                }
                var deleted = 0
                for id in ids {
                    let rows = try await c.query(
                        PostgresQuery(
                            unsafeSQL: """
                                WITH d AS (DELETE FROM \(schema).points WHERE series = $1 AND ts < $2 RETURNING 1)
                                SELECT count(*) FROM d
                                """, binds: PostgresStorage.binds(id, time)), logger: logger)
                    var n = 0
                    for try await count in rows.decode(Int64.self) { n = Int(count) }
                    if n > 0 {
                        deleted += n
                        try await Self.trimRollups(c, schema: schema, series: id, before: time, logger: logger)
                    }
                }
                return deleted
            }
        }
    }
}
