public import Logging
public import ServiceLifecycle

/// Deletes every tenant's points older than a retention period, on a schedule, through
/// ``PointStore/deletePoints(_:before:)`` (which trims the rollups, so aggregates stay exact). Add it to
/// the service group next to the ingestor. It works on any point store: SQLite
/// (`SQLitePointStore`'s `retention`, with its own initializer in `IoTStorage`), PostgreSQL or one of your own.
///
/// ```swift
/// let retention = RetentionService(
///     store: points, retention: .seconds(90 * 86_400), tenants: { try await registry.tenants().map(\.id) })
/// ```
public final class RetentionService: Service {
    /// How often retention runs.
    public struct Configuration: Sendable {
        /// Time between runs. Default one hour.
        public var interval: Duration
        /// Creates a configuration.
        public init(interval: Duration = .seconds(3600)) { self.interval = interval }
    }

    private let store: any PointStore
    private let retention: Duration?
    private let tenants: @Sendable () async throws -> [TenantID]
    private let configuration: Configuration
    private let clock: any IoTClock
    private let logger: Logger

    /// Creates the service for any point store.
    ///
    /// - Parameters:
    ///   - retention: how long points are kept; `nil` keeps them forever (the service does nothing).
    ///   - tenants: the tenants to apply it to, asked at each run (for example the registry's).
    public init(
        store: any PointStore, retention: Duration?, tenants: @escaping @Sendable () async throws -> [TenantID],
        configuration: Configuration = Configuration(), clock: any IoTClock = SystemClock(),
        logger: Logger = Logger(label: "iot.retention")
    ) {
        self.store = store
        self.retention = retention
        self.tenants = tenants
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    /// Runs retention once for every tenant; returns the points deleted.
    @discardableResult
    public func runOnce() async -> Int {
        guard let keep = retention?.inMilliseconds else { return 0 }
        let (cutoff, overflow) = clock.now().subtractingReportingOverflow(keep)
        guard !overflow else { return 0 }
        let list: [TenantID]
        do {
            list = try await tenants()
        } catch {
            logger.error("retention could not list the tenants; it runs again later", metadata: ["error": "\(error)"])
            return 0
        }
        var total = 0
        for tenant in list {
            do {
                total += try await store.deletePoints(.tenant(tenant), before: cutoff)
            } catch {
                logger.error("retention failed", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
            }
        }
        if total > 0 { logger.info("retention deleted points", metadata: ["points": "\(total)"]) }
        return total
    }

    /// Runs retention now and then every interval until cancelled or shut down.
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await runOnce()
            do {
                try await cancelWhenGracefulShutdown {
                    try await self.clock.sleep(forMillis: self.configuration.interval.inMilliseconds)
                }
            } catch {
                return
            }
        }
    }
}
