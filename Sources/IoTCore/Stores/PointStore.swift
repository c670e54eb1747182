/// Points of one tenant to commit together, with the journal position they come from.
public struct PointBatch: Sendable, Hashable {
    /// The tenant whose database receives the points.
    public var tenant: TenantID
    /// The points, in journal order.
    public var points: [Point]
    /// The highest journal sequence number included; committed in the same transaction as the points,
    /// so after a crash everything above it is replayed. `0` for writes that bypass the journal.
    public var journalSequence: UInt64

    /// Creates a batch.
    public init(tenant: TenantID, points: [Point], journalSequence: UInt64) {
        self.tenant = tenant
        self.points = points
        self.journalSequence = journalSequence
    }
}

/// Statistics of the points in one time bucket.
///
/// ``sum``, ``min``, ``max`` and ``mean`` cover numeric values (booleans count as 1 and 0); they are `nil`
/// when the bucket holds no numeric value. ``first`` and ``last`` are by time.
public struct AggregateBucket: Sendable, Hashable, Codable {
    /// Bucket start (inclusive, UTC ms).
    public var start: Int64
    /// Bucket end (exclusive, UTC ms).
    public var end: Int64
    /// Number of points.
    public var count: Int
    /// Sum of numeric values.
    public var sum: Double?
    /// Smallest numeric value.
    public var min: Double?
    /// Largest numeric value.
    public var max: Double?
    /// Earliest point's value.
    public var first: SignalValue?
    /// Latest point's value.
    public var last: SignalValue?

    /// Mean of the numeric values.
    public var mean: Double? {
        guard let sum, count > 0 else { return nil }
        return sum / Double(count)
    }

    /// Creates a bucket.
    public init(
        start: Int64, end: Int64, count: Int = 0, sum: Double? = nil, min: Double? = nil, max: Double? = nil,
        first: SignalValue? = nil, last: SignalValue? = nil
    ) {
        self.start = start
        self.end = end
        self.count = count
        self.sum = sum
        self.min = min
        self.max = max
        self.first = first
        self.last = last
    }
}

/// The order of points returned by a range query.
public enum PointOrder: String, Sendable, Hashable, Codable {
    /// Oldest first.
    case ascending
    /// Newest first.
    case descending
}

/// What a store does when a point arrives for a (series, time) that already has a different value.
///
/// The same value again (a replay, a device resend) is never a second point under either policy.
public enum DuplicatePolicy: String, Sendable, Hashable, Codable {
    /// The newer write replaces the stored value, as ThingsBoard does. Default.
    case lastWriteWins
    /// The stored value stays; the newer write is ignored.
    case firstWriteWins
}

/// What a ``PointStore/writeReporting(_:)`` did to points already stored.
public struct PointWriteSummary: Sendable, Hashable {
    /// Points whose (device, signal, time) held a different value that the batch replaced
    /// (``DuplicatePolicy/lastWriteWins``), a point earlier in the same batch included.
    public var overwritten: Int

    /// Creates a summary.
    public init(overwritten: Int = 0) {
        self.overwritten = overwritten
    }
}

extension PointStore {
    /// Calls ``write(_:)`` and reports nothing: the store does not tell what it replaced.
    public func writeReporting(_ batch: PointBatch) async throws -> PointWriteSummary {
        try await write(batch)
        return PointWriteSummary()
    }
}

/// Time-series storage: points per (device, signal), their latest values, ranges and aggregates.
///
/// ## Implementing a point store
/// - ``write(_:)`` commits all points of the batch and ``PointBatch/journalSequence`` atomically: after a
///   crash either both are there or neither. ``committedSequence(tenant:)`` returns the highest sequence
///   committed for that tenant (0 when none).
/// - At most one point per (device, signal, time). A point equal to the stored one changes nothing; a
///   different value follows the store's ``DuplicatePolicy`` (document the default).
/// - Aggregates must equal the aggregate of the raw points for any window, aligned or not, including
///   points that arrive late (older than points already stored). Buckets start at `from` and are
///   `bucketMillis` long; the last one ends at `to`. Empty buckets are omitted.
/// - Every query takes an ``AccessScope``; a device outside the scope is treated as if it had no data
///   (queries return nothing, they do not throw), so callers cannot probe for devices they may not see.
/// - Throw ``IoTError`` (``IoTError/Code/storage`` with the native code) on failure.
/// - Pass `IoTTesting.PointStoreConformance` to check an implementation.
public protocol PointStore: Sendable {
    /// Commits a batch of one tenant's points together with its journal sequence.
    func write(_ batch: PointBatch) async throws
    /// Commits a batch as ``write(_:)`` does and says what it did to points already stored. The default
    /// implementation calls ``write(_:)`` and reports nothing; a store that can tell overrides it, so that
    /// overwritten points are counted (`iot_ingest_points_overwritten_total`).
    func writeReporting(_ batch: PointBatch) async throws -> PointWriteSummary
    /// The highest journal sequence committed for `tenant` (0 when none).
    func committedSequence(tenant: TenantID) async throws -> UInt64
    /// The latest point of each signal of `device` (all signals when `signals` is `nil`), sorted by signal.
    func latest(_ scope: AccessScope, device: String, signals: [String]?) async throws -> [Point]
    /// The time of the newest point of each device of `scope` that has any (UTC ms), by device uid: what
    /// ``DeviceActivity`` knows of each device after a restart, before the device is heard from again.
    func newestPointTimes(_ scope: AccessScope) async throws -> [String: Int64]
    /// Points of one series with `from <= time < to`, at most `limit` (nil = no limit) in `order`.
    func range(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, limit: Int?, order: PointOrder
    ) async throws -> [Point]
    /// Aggregates of one series over `[from, to)`, in buckets of `bucketMillis` starting at `from`
    /// (one bucket when `nil`). Empty buckets are omitted.
    func aggregate(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, bucketMillis: Int64?
    ) async throws -> [AggregateBucket]
    /// Deletes the tenant's points older than `time` (retention); returns how many were deleted.
    @discardableResult
    func deletePoints(_ scope: AccessScope, before time: Int64) async throws -> Int
}

/// Sees every batch of points right after the ``Ingestor`` committed it to the ``PointStore``: the
/// rule engine, a live feed, a cache of latest values.
///
/// ## Implementing a point observer
/// - ``pointsCommitted(_:)`` is awaited by the ingestor's committer before the next batch: return
///   quickly (hand the batch to your own bounded queue) and never throw.
/// - Replayed batches after a restart are observed too; the ``PointBatch/journalSequence`` tells them
///   apart from what you saw before.
public protocol PointObserver: Sendable {
    /// Called once per committed batch, in commit order.
    func pointsCommitted(_ batch: PointBatch) async
}
