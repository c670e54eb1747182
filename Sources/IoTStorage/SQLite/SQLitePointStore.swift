import Dispatch
public import IoTCore
import Logging
import Synchronization

/// The default ``PointStore``: points, their rollups and the journal watermark in each tenant's SQLite
/// database.
///
/// ```swift
/// let storage = try SQLiteStorage(configuration: .init(directory: "/var/lib/iotd"))
/// let points = SQLitePointStore(storage: storage)
/// try await points.write(PointBatch(tenant: "acme", points: [
///     Point(device: "pump-1", signal: "temp", time: 1_700_000_000_000, value: .number(21.5)),
/// ], journalSequence: 42))
/// let hourly = try await points.aggregate(.tenant("acme"), series: SeriesKey(device: "pump-1", signal: "temp"),
///                                         from: t0, to: t0 + 86_400_000, bucketMillis: 3_600_000)
/// ```
///
/// ## Storage
/// Per tenant database (schema component `points`):
/// - `series(id, device, signal)`: one row per (device, signal); points refer to the integer id.
/// - `points(series, ts, value) WITHOUT ROWID`, primary key `(series, ts)`: one B-tree clustered by series
///   and time, so a range or a latest value is one index seek. `value` has no declared type; its storage
///   class is the value's type (REAL number, INTEGER 0/1 bool, TEXT text).
/// - `rollup_1m`, `rollup_1h`: count, sum, min, max, first and last per (series, minute / hour) of the closed
///   minutes, those before the tenant's first open minute (`rollup_open_from` in `points_meta`).
/// - `points_meta`: the committed journal sequence and the first open minute.
///
/// ## Closing minutes
/// A point into an open minute costs its row alone. A minute closes ``Configuration/rollupDelay`` after it
/// ends: the first write after that builds the rows of every minute up to then from the points, series by
/// series, and adds them to their hours' rows, in one transaction (``closeRollups(tenant:before:)``). A late
/// point, into a closed minute, updates its minute's and hour's rows in its batch's transaction, as an
/// overwrite there recomputes them. Updating each batch's minute and hour rows had cost more than the points
/// themselves: with 10,000 devices each message dirtied pages of two more B-trees. Aggregates read the open
/// minutes from the points, so they are exact before, during and after a closing, and after a crash.
///
/// ## Duplicates
/// At most one point per (series, time). The same value again changes nothing; a different value follows
/// ``Configuration/duplicatePolicy``, by default ``DuplicatePolicy/lastWriteWins``.
///
/// ## Queries
/// Aggregates combine raw points for the parts of a bucket that are not whole minutes, minute rollups for
/// whole minutes and hour rollups for whole hours: an unaligned one-hour mean reads at most about 180 rows instead
/// of 3,600.
public final class SQLitePointStore: PointStore {
    /// How the store treats duplicates and old data.
    public struct Configuration: Sendable {
        /// What happens when a different value arrives for a (series, time) that has one. Default
        /// ``DuplicatePolicy/lastWriteWins``: the newer write replaces the stored value (and the rollups
        /// covering it are recomputed).
        public var duplicatePolicy: DuplicatePolicy
        /// How long points are kept (`retentionDays` in a file); `nil` (default) keeps them forever. Applied by
        /// ``SQLitePointStore/applyRetention(tenant:now:)``, which the host calls on a schedule.
        public var retention: Duration?
        /// The rollup bucket sizes in milliseconds: fixed at one minute and one hour. Aggregates over whole
        /// closed minutes and hours read these instead of the raw points.
        public var rollupBucketMillis: [Int64] { RollupLevel.allCases.map(\.millis) }
        /// How long after a minute ends its rollup rows are built: points later than that (after their minute
        /// closed) each update the rows, which costs more than a point in time. Default 2 minutes, as
        /// `PostgresPointStore`'s.
        public var rollupDelay: Duration

        /// Creates a configuration; every parameter has its documented default.
        public init(
            duplicatePolicy: DuplicatePolicy = .lastWriteWins, retention: Duration? = nil,
            rollupDelay: Duration = .seconds(120)
        ) {
            self.duplicatePolicy = duplicatePolicy
            self.retention = retention
            self.rollupDelay = rollupDelay
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    let storage: SQLiteStorage
    private let tenants = Mutex<[TenantID: PointTenant]>([:])

    /// The clock that says when a minute has ended ``Configuration/rollupDelay`` ago.
    let clock: any IoTClock

    /// Creates a store on `storage`'s tenant databases. Schemas are created on each tenant's first use; `clock`
    /// tells when minutes close (tests pass a manual one).
    public init(
        storage: SQLiteStorage, configuration: Configuration = Configuration(), clock: any IoTClock = SystemClock()
    ) {
        self.storage = storage
        self.configuration = configuration
        self.clock = clock
    }

    /// Version 2 added the first open minute. A version 1 database's rollup rows hold every point, so its first
    /// open minute is the one after its last minute row.
    static let schemaVersion = 2
    static let schema = """
        CREATE TABLE IF NOT EXISTS series(
          id INTEGER PRIMARY KEY, device TEXT NOT NULL, signal TEXT NOT NULL, UNIQUE(device, signal));
        CREATE TABLE IF NOT EXISTS points(
          series INTEGER NOT NULL, ts INTEGER NOT NULL, value, PRIMARY KEY(series, ts)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS rollup_1m(
          series INTEGER NOT NULL, bucket INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL, min REAL, max REAL,
          first_ts INTEGER NOT NULL, first_value, last_ts INTEGER NOT NULL, last_value,
          PRIMARY KEY(series, bucket)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS rollup_1h(
          series INTEGER NOT NULL, bucket INTEGER NOT NULL, count INTEGER NOT NULL, sum REAL, min REAL, max REAL,
          first_ts INTEGER NOT NULL, first_value, last_ts INTEGER NOT NULL, last_value,
          PRIMARY KEY(series, bucket)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS points_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT OR IGNORE INTO points_meta(key, value)
          SELECT 'rollup_open_from', CASE WHEN max(bucket) IS NULL THEN \(RollupLevel.nothingClosed)
                 ELSE min(max(bucket), 9223372036850000000) + 60000 END FROM rollup_1m;
        """

    /// The tenant's database with the `points` schema applied (opened off the cooperative pool).
    func tenant(_ id: TenantID) async throws -> PointTenant {
        // A database deleted with its tenant is opened again (new and empty) when the tenant is used again.
        if let t = tenants.withLock({ $0[id] }), storage.isCurrent(t.db, of: id) { return t }
        let storage = self.storage
        let opened = try await offPool {
            let db = try storage.database(for: id)
            try db.ensureSchema(component: "points", version: Self.schemaVersion, Self.schema)
            return PointTenant(db: db)
        }
        return tenants.withLock { dict in
            if let existing = dict[id], existing.db === opened.db { return existing }
            dict[id] = opened
            return opened
        }
    }

    // MARK: PointStore

    /// Commits the batch, its rollups and its journal sequence in one `BEGIN IMMEDIATE` transaction.
    public func write(_ batch: PointBatch) async throws {
        _ = try await writeReporting(batch)
    }

    /// ``write(_:)``, counting the stored points the batch replaced with a different value.
    public func writeReporting(_ batch: PointBatch) async throws -> PointWriteSummary {
        if batch.points.isEmpty && batch.journalSequence == 0 { return PointWriteSummary() }
        let tenant = try await tenant(batch.tenant)
        let policy = configuration.duplicatePolicy
        let due = clock.now() - configuration.rollupDelay.inMilliseconds
        let logger = storage.logger
        let overwritten = try await tenant.db.write { conn in
            let overwritten: Int
            do {
                overwritten = try conn.transaction { try Self.apply(batch, policy: policy, tenant: tenant, conn) }
            } catch {
                // Series ids created in the rolled-back transaction no longer exist.
                tenant.seriesIDs.removeAll()
                throw error
            }
            // The batch committed: a failure to close is logged, and the next write tries again.
            do {
                try Self.close(tenant, before: due, conn)
            } catch {
                logger.warning(
                    "closing the rollups of tenant \(batch.tenant) failed; the next write tries again",
                    metadata: ["error": "\(error)"])
            }
            return overwritten
        }
        return PointWriteSummary(overwritten: overwritten)
    }

    /// Closes the tenant's minutes that end at or before `time`: builds their `rollup_1m` rows from the points
    /// and adds them to their `rollup_1h` rows, after which later points into them update those rows.
    ///
    /// Writes call this by themselves once a minute has ended ``Configuration/rollupDelay`` ago; a benchmark or a
    /// test may close earlier. Aggregates are exact before and after. Closing what is closed already does nothing.
    ///
    /// - Returns: how many minute rows were built.
    @discardableResult
    public func closeRollups(tenant id: TenantID, before time: Int64) async throws -> Int {
        let tenant = try await tenant(id)
        return try await tenant.db.write { conn in try Self.close(tenant, before: time, conn) }
    }

    /// The highest journal sequence committed for `tenant` (0 when none).
    public func committedSequence(tenant id: TenantID) async throws -> UInt64 {
        let tenant = try await tenant(id)
        return try await tenant.db.read { conn in
            let s = try conn.statement("SELECT value FROM points_meta WHERE key = 'journal_sequence'")
            defer { s.reset() }
            return try s.step() ? UInt64(max(0, s.int64(0))) : 0
        }
    }

    /// Deletes the points before `time` of the devices in `scope`, and trims their rollups so aggregates
    /// stay exact; returns the number of points deleted.
    @discardableResult
    public func deletePoints(_ scope: AccessScope, before time: Int64) async throws -> Int {
        let tenant = try await tenant(scope.tenant)
        return try await tenant.db.write { conn in
            try conn.transaction {
                let list = try conn.statement("SELECT id, device FROM series ORDER BY id")
                var ids: [Int64] = []
                while try list.step() {
                    if scope.permits(device: list.fullText(1)) { ids.append(list.int64(0)) }
                }
                list.reset()
                let openFrom = try Self.openFrom(tenant, conn)
                var deleted = 0
                for id in ids {
                    let d = try conn.statement("DELETE FROM points WHERE series = ? AND ts < ?")
                    d.bind(1, id)
                    d.bind(2, time)
                    try d.run()
                    d.reset()
                    let n = conn.changes
                    if n > 0 {
                        deleted += n
                        try Self.trimRollups(conn, series: id, before: time, openFrom: openFrom)
                    }
                }
                return deleted
            }
        }
    }

    /// Applies ``Configuration/retention``: deletes the tenant's points older than
    /// `now - retention` (nothing when retention is `nil`); returns how many were deleted.
    ///
    /// The host calls this on a schedule (for example hourly) with its clock's `now` in UTC ms.
    @discardableResult
    public func applyRetention(tenant: TenantID, now: Int64) async throws -> Int {
        guard let keep = configuration.retention?.inMilliseconds else { return 0 }
        let (cutoff, overflow) = now.subtractingReportingOverflow(keep)
        if overflow { return 0 }
        return try await deletePoints(.tenant(tenant), before: cutoff)
    }
}

/// One tenant's database and the writer's copies of its series ids and first open minute.
///
/// `@unchecked Sendable` because `seriesIDs` and `openFrom` are only read and written inside `db.write`
/// closures, which run one at a time on the database's serial writer queue with the writer connection's lock
/// held; `db` is itself `Sendable` and immutable here.
final class PointTenant: @unchecked Sendable {
    let db: SQLiteDatabase
    /// (device, signal) → series id, for committed series only (cleared when a transaction rolls back).
    var seriesIDs: [SeriesKey: Int64] = [:]
    /// The first open minute as committed, once read (`nil` after a transaction that moved it failed).
    var openFrom: Int64?

    init(db: SQLiteDatabase) { self.db = db }
}

extension SQLitePointStore.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case duplicatePolicy, retentionDays, rollupDelaySeconds }

    /// Reads `duplicatePolicy`, `retentionDays` (a number of days, fractions allowed; missing: keep
    /// everything) and `rollupDelaySeconds` (0 to 86400), as `storage:` in iotd.yaml has them.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        var retention: Duration?
        if let days = try c.decodeIfPresent(Double.self, forKey: .retentionDays) {
            guard days > 0 && days <= 36_500 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .retentionDays, in: c,
                    debugDescription:
                        "\(days) is out of range; use more than 0 and at most 36500 days, or leave it out to keep everything"
                )
            }
            retention = .milliseconds(Int64(days * 86_400_000))
        }
        let rollupDelay = try c.decodeSeconds(.rollupDelaySeconds, or: d.rollupDelay)
        guard (0...86_400).contains(rollupDelay.components.seconds) else {
            throw DecodingError.dataCorruptedError(
                forKey: .rollupDelaySeconds, in: c,
                debugDescription: "\(rollupDelay) is out of range; use 0 to 86400 seconds (default 120)")
        }
        self.init(
            duplicatePolicy: try c.decode(.duplicatePolicy, or: d.duplicatePolicy), retention: retention,
            rollupDelay: rollupDelay)
    }
}
