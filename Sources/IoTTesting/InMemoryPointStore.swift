public import IoTCore
import Synchronization

/// A ``PointStore`` in memory, for tests and examples: the same semantics as `SQLitePointStore`, no C.
///
/// Aggregates are computed from the raw points on every query, which makes this store the reference
/// the conformance suite's brute-force checks agree with.
///
/// ```swift
/// let store = InMemoryPointStore()
/// try await store.write(PointBatch(tenant: "t", points: [
///     Point(device: "d", signal: "temp", time: 1_000, value: .number(20)),
/// ], journalSequence: 1))
/// ```
public final class InMemoryPointStore: PointStore {
    private struct TenantData {
        var series: [SeriesKey: [Int64: SignalValue]] = [:]
        var committed: UInt64 = 0
    }

    /// What happens when a different value arrives for a stored (series, time).
    public let duplicatePolicy: DuplicatePolicy
    private let state = Mutex<[TenantID: TenantData]>([:])

    /// Creates an empty store. `duplicatePolicy` defaults to ``DuplicatePolicy/lastWriteWins``, like
    /// `SQLitePointStore`.
    public init(duplicatePolicy: DuplicatePolicy = .lastWriteWins) {
        self.duplicatePolicy = duplicatePolicy
    }

    /// Commits the batch and its journal sequence atomically (under one lock).
    public func write(_ batch: PointBatch) async throws {
        _ = try await writeReporting(batch)
    }

    /// ``write(_:)``, counting the stored points the batch replaced with a different value.
    public func writeReporting(_ batch: PointBatch) async throws -> PointWriteSummary {
        try Self.validate(batch.tenant)
        let policy = duplicatePolicy
        return state.withLock { tenants in
            // In place: a copy of the tenant's data would copy every series' table on each write.
            func apply(_ data: inout TenantData) -> Int {
                var overwritten = 0
                for p in batch.points {
                    let key = p.series
                    if let old = data.series[key]?[p.time] {
                        if old == p.value || policy == .firstWriteWins { continue }
                        overwritten += 1
                    }
                    data.series[key, default: [:]][p.time] = p.value
                }
                data.committed = max(data.committed, batch.journalSequence)
                return overwritten
            }
            return PointWriteSummary(overwritten: apply(&tenants[batch.tenant, default: TenantData()]))
        }
    }

    /// The highest journal sequence committed for `tenant` (0 when none).
    public func committedSequence(tenant: TenantID) async throws -> UInt64 {
        try Self.validate(tenant)
        return state.withLock { $0[tenant]?.committed ?? 0 }
    }

    /// The latest point of each signal of `device`, sorted by signal.
    public func newestPointTimes(_ scope: AccessScope) async throws -> [String: Int64] {
        try Self.validate(scope.tenant)
        return state.withLock { tenants in
            var newest: [String: Int64] = [:]
            for (key, points) in tenants[scope.tenant]?.series ?? [:] where scope.permits(device: key.device) {
                if let time = points.keys.max() { newest[key.device] = max(newest[key.device] ?? .min, time) }
            }
            return newest
        }
    }

    public func latest(_ scope: AccessScope, device: String, signals: [String]?) async throws -> [Point] {
        try Self.validate(scope.tenant)
        guard scope.permits(device: device) else { return [] }
        let wanted = signals.map(Set.init)
        return state.withLock { tenants in
            var result: [Point] = []
            for (key, points) in tenants[scope.tenant]?.series ?? [:]
            where key.device == device && (wanted?.contains(key.signal) ?? true) {
                if let (time, value) = points.max(by: { $0.key < $1.key }) {
                    result.append(Point(device: device, signal: key.signal, time: time, value: value))
                }
            }
            return result.sorted { $0.signal < $1.signal }
        }
    }

    /// Points of one series with `from <= time < to`, at most `limit`, in `order`.
    public func range(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, limit: Int?, order: PointOrder
    ) async throws -> [Point] {
        try Self.validate(scope.tenant)
        guard scope.permits(device: series.device) else { return [] }
        var points = sorted(scope.tenant, series, from, to)
        if order == .descending { points.reverse() }
        if let limit { points = Array(points.prefix(max(0, limit))) }
        return points.map { Point(device: series.device, signal: series.signal, time: $0.0, value: $0.1) }
    }

    /// Aggregates of one series over `[from, to)`, computed from the raw points.
    public func aggregate(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, bucketMillis: Int64?
    ) async throws -> [AggregateBucket] {
        try Self.validate(scope.tenant)
        if let b = bucketMillis, b <= 0 {
            throw IoTError(.invalidArgument, "bucketMillis must be positive (got \(b)); pass nil for one bucket")
        }
        guard scope.permits(device: series.device), to > from else { return [] }
        let (span, overflow) = to.subtractingReportingOverflow(from)
        if overflow { throw IoTError(.invalidArgument, "window [\(from), \(to)) is too wide; narrow it") }
        let width = bucketMillis ?? span
        var buckets: [Int64: AggregateBucket] = [:]
        for (time, value) in sorted(scope.tenant, series, from, to) {
            let k = (time - from) / width
            let start = from + k * width
            let (next, past) = start.addingReportingOverflow(width)
            var b = buckets[k] ?? AggregateBucket(start: start, end: past ? to : min(next, to))
            b.count += 1
            if let x = value.numericValue {
                b.sum = (b.sum ?? 0) + x
                b.min = Swift.min(b.min ?? x, x)
                b.max = Swift.max(b.max ?? x, x)
            }
            if b.first == nil { b.first = value }
            b.last = value
            buckets[k] = b
        }
        return buckets.keys.sorted().map { buckets[$0]! }
    }

    /// Deletes the points before `time` of the devices in `scope`; returns how many were deleted.
    @discardableResult
    public func deletePoints(_ scope: AccessScope, before time: Int64) async throws -> Int {
        try Self.validate(scope.tenant)
        return state.withLock { tenants in
            guard var data = tenants[scope.tenant] else { return 0 }
            var deleted = 0
            for (key, points) in data.series where scope.permits(device: key.device) {
                let kept = points.filter { $0.key >= time }
                deleted += points.count - kept.count
                data.series[key] = kept
            }
            tenants[scope.tenant] = data
            return deleted
        }
    }

    private func sorted(_ tenant: TenantID, _ series: SeriesKey, _ from: Int64, _ to: Int64) -> [(Int64, SignalValue)] {
        state.withLock { tenants in
            (tenants[tenant]?.series[series] ?? [:]).filter { $0.key >= from && $0.key < to }
                .sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
    }

    private static func validate(_ tenant: TenantID) throws {
        guard tenant.isValid else {
            throw IoTError(
                .invalidArgument, "tenant id '\(tenant)' is not valid: use 1–64 characters of A–Z a–z 0–9 - _")
        }
    }
}
