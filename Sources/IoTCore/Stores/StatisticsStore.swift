/// The result of one statistics job fire.
public struct StatisticsResult: Sendable, Hashable, Codable {
    /// The job.
    public var jobID: String
    /// When the job fired (UTC ms); with ``jobID`` it identifies the result.
    public var fireTime: Int64
    /// Window start (inclusive, UTC ms).
    public var windowStart: Int64
    /// Window end (exclusive, UTC ms).
    public var windowEnd: Int64
    /// Named results.
    public var values: [String: SignalValue]

    /// Creates a result.
    public init(jobID: String, fireTime: Int64, windowStart: Int64, windowEnd: Int64, values: [String: SignalValue]) {
        self.jobID = jobID
        self.fireTime = fireTime
        self.windowStart = windowStart
        self.windowEnd = windowEnd
        self.values = values
    }
}

/// Stored results of scheduled statistics jobs.
///
/// ## Implementing a statistics store
/// - ``save(_:_:)`` inserts or replaces by (job, fire time): re-running a fire after a crash is safe.
/// - ``results(_:jobID:from:to:)`` returns results with `from <= fireTime < to`, oldest first.
/// - ``lastFireTime(_:jobID:)`` lets the scheduler catch up on fires missed while it was down.
/// - Pass `IoTTesting.StatisticsStoreConformance` to check an implementation.
public protocol StatisticsStore: Sendable {
    /// Inserts or replaces a result.
    func save(_ scope: AccessScope, _ result: StatisticsResult) async throws
    /// Results of a job in a time range, oldest first.
    func results(_ scope: AccessScope, jobID: String, from: Int64, to: Int64) async throws -> [StatisticsResult]
    /// The latest fire time stored for a job, or `nil`.
    func lastFireTime(_ scope: AccessScope, jobID: String) async throws -> Int64?
    /// Claims the scheduled fire `fireTime` of job `jobID`: `true` for the first caller, `false` once another has
    /// claimed it. Several instances on one store (PostgreSQL) each schedule every job and run a fire only when
    /// they claim it, so each fire runs once. The default (a store of one instance) always claims.
    func claimFire(_ scope: AccessScope, jobID: String, fireTime: Int64) async throws -> Bool
}

extension StatisticsStore {
    /// Always `true`: one instance runs every fire.
    public func claimFire(_ scope: AccessScope, jobID: String, fireTime: Int64) async throws -> Bool { true }
}
