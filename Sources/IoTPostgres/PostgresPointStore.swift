import Foundation
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
/// - `rollup_1m`, `rollup_1h`: count, sum, min, max, first and last per (series, minute / hour) of the closed
///   minutes, those before the tenant's first open minute (`rollup_state`).
/// - `rollup_parts`: the same for the open minutes, one row per (series, minute) per batch, appended in the
///   batch's transaction with one `COPY` (no row is updated: updating each batch's minute and hour rows had cost
///   more than the points themselves).
/// - `watermarks(instance, sequence)`: the journal sequence each instance committed. The journal stays local
///   to each instance; a batch and its instance's watermark commit together, so a `kill -9` loses nothing
///   and replays nothing twice.
///
/// A minute closes ``Configuration/rollupDelay`` after it ends: the first write after that folds the parts of
/// every minute up to then into their `rollup_1m` rows and adds them to their `rollup_1h` rows, in one
/// statement, once for every instance (``closeRollups(tenant:before:)``). A late point, into a closed minute, is
/// added to its rows in its batch's transaction. Aggregates add the open minutes' parts to the closed rows: exact
/// before, during and after a closing.
///
/// ## Duplicates
/// At most one point per (series, time), with the same ``IoTCore/DuplicatePolicy`` as the SQLite store.
public final class PostgresPointStore: PointStore {
    /// The instance, the duplicate policy and the rollup delay.
    public struct Configuration: Sendable, Hashable {
        /// The instance whose journal watermark the store keeps (`cluster.instanceID` in iotd.yaml). Default
        /// `local`.
        public var instanceID: String
        /// What a different value at a stored (series, time) does. Default ``IoTCore/DuplicatePolicy/lastWriteWins``.
        public var duplicatePolicy: DuplicatePolicy
        /// How long after a minute ends its rollup rows are built: points later than that (after their minute
        /// closed) each update the rows, which costs more than a point in time. Default 2 minutes.
        public var rollupDelay: Duration

        /// Creates a configuration; every parameter has its documented default.
        public init(
            instanceID: String = "local", duplicatePolicy: DuplicatePolicy = .lastWriteWins,
            rollupDelay: Duration = .seconds(120)
        ) {
            self.instanceID = instanceID
            self.duplicatePolicy = duplicatePolicy
            self.rollupDelay = rollupDelay
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    let storage: PostgresStorage
    /// Committed series ids by tenant, with the tenant's generation they belong to (a deleted tenant's ids go).
    private let seriesIDs = Mutex<[TenantID: (generation: Int, ids: [SeriesKey: Int64])]>([:])
    /// Per tenant, how many more batches are written with the merge (a recent batch met stored points).
    private let mergeBatchesLeft = Mutex<[TenantID: Int]>([:])
    /// The tenants whose rollups this process is closing now (one closing at a time is enough).
    private let closing = Mutex<Set<TenantID>>([])

    /// Creates a store on `storage`; each tenant's tables are created on its first use.
    public init(storage: PostgresStorage, configuration: Configuration = Configuration()) {
        self.storage = storage
        self.configuration = configuration
    }

    /// Version 2 added `rollup_parts` and the first open minute (`rollup_state`): a version 1 schema's rollup rows
    /// are all exact, so its minutes are closed up to its last minute row.
    static let schemaVersion = 2
    /// The table of one rollup level (the same columns at both). Its pages are kept half full, so that the
    /// updates of a bucket's row (each closing adds to an hour's, a late point to both) are heap-only tuples,
    /// with no new index entry: about 30 % less work per rollup update, measured on PostgreSQL 15.
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
        CREATE TABLE IF NOT EXISTS {schema}.watermarks(instance text PRIMARY KEY, sequence bigint NOT NULL);
        CREATE TABLE IF NOT EXISTS {schema}.rollup_parts(
          series bigint NOT NULL, bucket bigint NOT NULL, count bigint NOT NULL,
          sum double precision, min double precision, max double precision,
          first_ts bigint NOT NULL, first_kind smallint NOT NULL, first_num double precision, first_txt bytea,
          last_ts bigint NOT NULL, last_kind smallint NOT NULL, last_num double precision, last_txt bytea);
        CREATE INDEX IF NOT EXISTS rollup_parts_key ON {schema}.rollup_parts(series, bucket);
        CREATE TABLE IF NOT EXISTS {schema}.rollup_state(id smallint PRIMARY KEY CHECK (id = 1), open_from bigint NOT NULL);
        INSERT INTO {schema}.rollup_state(id, open_from)
          SELECT 1, CASE WHEN max(bucket) IS NULL THEN \(RollupLevel.nothingClosed)
                    ELSE least(max(bucket), 9223372036850000000) + 60000 END FROM {schema}.rollup_1m
          ON CONFLICT (id) DO NOTHING
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
            let (overwritten, openFrom, ids) = try await storage.mapErrors("write points of tenant \(batch.tenant)") {
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
            if let openFrom { await closeIfDue(batch.tenant, openFrom: openFrom) }
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
    /// watermark. Returns the overwritten count, the first open minute it saw and the series ids known after it.
    private func transaction(_ batch: PointBatch, schema: String, known: [SeriesKey: Int64], merge: Bool)
        async throws -> (Int, Int64?, [SeriesKey: Int64])
    {
        let policy = configuration.duplicatePolicy
        let instance = configuration.instanceID
        let logger = self.logger
        return try await storage.client.withTransaction(logger: logger) { c in
            var ids = known
            let (overwritten, openFrom) =
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
            return (overwritten, openFrom, ids)
        }
    }

    /// Closes the minutes that ended ``Configuration/rollupDelay`` ago when the first open minute a write saw is
    /// before them; a failure is logged (the write itself committed), the next write tries again.
    private func closeIfDue(_ tenant: TenantID, openFrom: Int64) async {
        let delay = configuration.rollupDelay.components
        let delayMillis = delay.seconds * 1000 + delay.attoseconds / 1_000_000_000_000_000
        let due = Int64(Date().timeIntervalSince1970 * 1000) - delayMillis
        guard RollupLevel.minute.bucketStart(due) > openFrom, closing.withLock({ $0.insert(tenant).inserted })
        else { return }
        defer { _ = closing.withLock { $0.remove(tenant) } }
        do {
            try await closeRollups(tenant: tenant, before: due)
        } catch {
            logger.warning(
                "closing the rollups of tenant \(tenant) failed; the next write tries again",
                metadata: ["error": "\(error)"])
        }
    }

    /// Closes the tenant's minutes that end at or before `time`: folds what the writes appended into their
    /// `rollup_1m` rows and adds it to their `rollup_1h` rows, after which later points into them update those
    /// rows.
    ///
    /// Writes call this by themselves once a minute has ended ``Configuration/rollupDelay`` ago; a benchmark or a
    /// test may close earlier. It waits for the tenant's writes in flight to commit, and they for it; aggregates
    /// are exact before, during and after. Closing what is closed already does nothing.
    ///
    /// - Returns: how many minute rows were built.
    @discardableResult
    public func closeRollups(tenant: TenantID, before time: Int64) async throws -> Int {
        let schema = try await schema(tenant)
        let logger = self.logger
        return try await storage.mapErrors("close the rollups of tenant \(tenant)") {
            try await storage.client.withTransaction(logger: logger) { c in
                try await Self.close(c, schema: schema, before: time, logger: logger)
            }
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
                try await Self.lockRollups(c, schema: schema, exclusive: true, logger: logger)
                let openFrom = try await Self.openFrom(c, schema: schema, logger: logger)
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
                        try await Self.trimRollups(
                            c, schema: schema, series: id, before: time, openFrom: openFrom, logger: logger)
                    }
                }
                return deleted
            }
        }
    }
}
