public import IoTCore
import Synchronization

/// A ``StatisticsStore`` in memory: results keyed by (job, fire time).
///
/// ```swift
/// let stats = InMemoryStatisticsStore()
/// try await stats.save(.tenant("acme"), StatisticsResult(jobID: "daily", fireTime: 86_400_000,
///     windowStart: 0, windowEnd: 86_400_000, values: ["total": .number(12)]))
/// ```
public final class InMemoryStatisticsStore: StatisticsStore {
    private struct Key: Hashable {
        var tenant: TenantID
        var jobID: String
    }
    private let state = Mutex<[Key: [Int64: StatisticsResult]]>([:])

    /// Creates an empty store.
    public init() {}

    public func save(_ scope: AccessScope, _ result: StatisticsResult) async throws {
        state.withLock { $0[Key(tenant: scope.tenant, jobID: result.jobID), default: [:]][result.fireTime] = result }
    }

    public func results(_ scope: AccessScope, jobID: String, from: Int64, to: Int64) async throws -> [StatisticsResult]
    {
        state.withLock { s in
            (s[Key(tenant: scope.tenant, jobID: jobID)] ?? [:]).values
                .filter { from <= $0.fireTime && $0.fireTime < to }
                .sorted { $0.fireTime < $1.fireTime }
        }
    }

    public func lastFireTime(_ scope: AccessScope, jobID: String) async throws -> Int64? {
        state.withLock { s in s[Key(tenant: scope.tenant, jobID: jobID)]?.keys.max() }
    }
}
