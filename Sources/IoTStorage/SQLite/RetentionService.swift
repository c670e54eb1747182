public import IoTCore
public import Logging
public import ServiceLifecycle

/// Applies the point store's retention (``SQLitePointStore/Configuration/retention``) to every
/// tenant on a schedule. Add it to the service group next to the ingestor.
///
/// ```swift
/// let points = SQLitePointStore(storage: storage, configuration: .init(retentionMillis: 90 * 86_400_000))
/// let retention = RetentionService(store: points, storage: storage)
/// ```
public final class RetentionService: Service {
    /// How often retention runs.
    public struct Configuration: Sendable {
        /// Time between runs. Default one hour.
        public var interval: Duration
        /// Creates a configuration.
        public init(interval: Duration = .seconds(3600)) { self.interval = interval }
    }

    private let store: SQLitePointStore
    private let storage: SQLiteStorage
    private let configuration: Configuration
    private let clock: any IoTClock
    private let logger: Logger

    /// Creates the service.
    public init(
        store: SQLitePointStore, storage: SQLiteStorage, configuration: Configuration = Configuration(),
        clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.retention")
    ) {
        self.store = store
        self.storage = storage
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    /// Runs retention once for every tenant with a database; returns the points deleted.
    @discardableResult
    public func runOnce() async -> Int {
        var total = 0
        for tenant in storage.tenantsOnDisk() {
            do {
                total += try await store.applyRetention(tenant: tenant, now: clock.now())
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
