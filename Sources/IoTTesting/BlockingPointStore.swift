public import IoTCore

/// A point store whose writes wait until ``release()``: for testing what a transport does when the
/// store falls behind (back-pressure, `503 Retry-After`, nothing acknowledged lost).
///
/// Reads go straight to the wrapped store.
///
/// ```swift
/// let blocked = BlockingPointStore()
/// let ingestor = Ingestor(configuration: .init(queueCapacityPoints: 10), journal: InMemoryJournal(),
///                         pointStore: blocked, registry: registry)
/// // … ingest until `IoTError.Code.backpressure`, then:
/// blocked.release()
/// ```
public final class BlockingPointStore: PointStore {
    /// The store that receives the writes once released.
    public let inner: InMemoryPointStore
    private let gate = Gate()

    /// Wraps `inner` (a new in-memory store by default); writes block until ``release()``.
    public init(inner: InMemoryPointStore = InMemoryPointStore()) { self.inner = inner }

    /// Lets every pending and future write through.
    public func release() { Task { await gate.open() } }

    public func write(_ batch: PointBatch) async throws {
        try await gate.wait()
        try await inner.write(batch)
    }
    public func writeReporting(_ batch: PointBatch) async throws -> PointWriteSummary {
        try await gate.wait()
        return try await inner.writeReporting(batch)
    }
    public func committedSequence(tenant: TenantID) async throws -> UInt64 {
        try await inner.committedSequence(tenant: tenant)
    }
    public func latest(_ scope: AccessScope, device: String, signals: [String]?) async throws -> [Point] {
        try await inner.latest(scope, device: device, signals: signals)
    }
    public func newestPointTimes(_ scope: AccessScope) async throws -> [String: Int64] {
        try await inner.newestPointTimes(scope)
    }
    public func range(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, limit: Int?, order: PointOrder
    ) async throws -> [Point] {
        try await inner.range(scope, series: series, from: from, to: to, limit: limit, order: order)
    }
    public func aggregate(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, bucketMillis: Int64?
    ) async throws -> [AggregateBucket] {
        try await inner.aggregate(scope, series: series, from: from, to: to, bucketMillis: bucketMillis)
    }
    public func deletePoints(_ scope: AccessScope, before time: Int64) async throws -> Int {
        try await inner.deletePoints(scope, before: time)
    }

    private actor Gate {
        var isOpen = false
        var waiters: [CheckedContinuation<Void, any Error>] = []
        func open() {
            isOpen = true
            for w in waiters { w.resume() }
            waiters = []
        }
        func wait() async throws {
            if isOpen { return }
            try await withCheckedThrowingContinuation { waiters.append($0) }
        }
    }
}
