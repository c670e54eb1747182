import Foundation
public import IoTCore
public import Logging
import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// Carries committed points between the instances of one PostgreSQL for their live feeds, so that a dashboard
/// connected to one instance sees the points another instance ingested.
///
/// An instance whose live feed has subscribers says so in the table `live_watch(instance, tenant, until)` of the
/// system schema, renewed every ``Configuration/watchRenewal`` and lapsing after three renewals. Each instance
/// reads who watches which tenant at the same pace, and sends the batches it commits of a tenant watched on
/// another instance with `pg_notify` on the channel `iot_live` (split into payloads under PostgreSQL's 8,000-byte
/// limit); every instance listens and hands what others sent to `deliver` (its live feed). A tenant nobody else
/// watches costs nothing on the data path.
///
/// ```swift
/// let relay = PostgresLiveRelay(
///     storage: storage, instanceID: "iotd-1", deliver: { await liveFeed.pointsCommitted($0) },
///     watchedHere: { liveFeed.watchedTenants })
/// // Pass it to the Ingestor as a PointObserver, and run it in the ServiceGroup.
/// ```
public final class PostgresLiveRelay: PointObserver, Service {
    /// How often watches are renewed and read.
    public struct Configuration: Sendable {
        /// Default 2 s: a dashboard opened on one instance gets other instances' points within about that.
        public var watchRenewal: Duration
        /// Creates a configuration.
        public init(watchRenewal: Duration = .seconds(2)) { self.watchRenewal = watchRenewal }
    }

    let storage: PostgresStorage
    let instanceID: String
    let configuration: Configuration
    let deliver: @Sendable (PointBatch) async -> Void
    let watchedHere: @Sendable () -> Set<TenantID>
    let logger: Logger
    /// The tenants another instance watches, as last read.
    private let watchedElsewhere = Mutex<Set<TenantID>>([])

    static let channel = "iot_live"
    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.live_watch(
          instance text NOT NULL, tenant text NOT NULL, until bigint NOT NULL, PRIMARY KEY(instance, tenant))
        """

    /// Creates a relay; nothing is sent or received before ``run()``.
    ///
    /// - Parameters:
    ///   - instanceID: this instance (`cluster.instanceID`); its own notifications are ignored.
    ///   - deliver: where points committed elsewhere go (the live feed's `pointsCommitted`).
    ///   - watchedHere: the tenants this instance's live feed has subscribers for.
    public init(
        storage: PostgresStorage, instanceID: String, configuration: Configuration = Configuration(),
        deliver: @escaping @Sendable (PointBatch) async -> Void,
        watchedHere: @escaping @Sendable () -> Set<TenantID>, logger: Logger = Logger(label: "iot.live")
    ) {
        self.storage = storage
        self.instanceID = instanceID
        self.configuration = configuration
        self.deliver = deliver
        self.watchedHere = watchedHere
        self.logger = logger
    }

    /// One notification: who sent it, the tenant and its points.
    struct Message: Codable {
        var i: String
        var t: TenantID
        var p: [Point]
    }

    /// Sends the batch to the other instances when one of them watches its tenant.
    public func pointsCommitted(_ batch: PointBatch) async {
        guard !batch.points.isEmpty, watchedElsewhere.withLock({ $0.contains(batch.tenant) }) else { return }
        for payload in Self.payloads(of: batch, from: instanceID) {
            do {
                try await storage.notify(Self.channel, payload, logger: logger)
            } catch {
                logger.warning(
                    "live points not relayed to the other instances", metadata: ["error": "\(error)"])
                return
            }
        }
    }

    /// The batch as JSON payloads under `PostgresStorage.maxPayloadBytes` each. Not relayed (they are stored all the same):
    /// non-finite numbers, which JSON cannot say (the live feed shows them as null), and a point whose text alone
    /// is over the limit.
    static func payloads(of batch: PointBatch, from instance: String) -> [String] {
        let encoder = JSONEncoder()
        let points = batch.points.filter { p in
            if case .number(let v) = p.value { return v.isFinite }
            return true
        }
        return PostgresStorage.payloads(of: points) {
            try? encoder.encode(Message(i: instance, t: batch.tenant, p: $0))
        }
    }

    /// Listens for other instances' points and keeps the watches, until graceful shutdown.
    public func run() async throws {
        let schema = try await storage.systemSchema(component: "live", version: 1, Self.ddl)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.listen() }
                group.addTask { await self.keepWatches(schema) }
                await group.waitForAll()
            }
        }
        // Stop saying this instance watches anything.
        _ = try? await storage.client.query(
            PostgresQuery(
                unsafeSQL: "DELETE FROM \(schema).live_watch WHERE instance = $1",
                binds: PostgresStorage.binds(instanceID)), logger: logger)
    }

    private func listen() async {
        let decoder = JSONDecoder()
        await storage.listen(on: Self.channel, logger: logger) { payload in
            guard let m = try? decoder.decode(Message.self, from: Data(payload.utf8)), m.i != self.instanceID else {
                return
            }
            await self.deliver(PointBatch(tenant: m.t, points: m.p, journalSequence: 0))
        }
    }

    private func keepWatches(_ schema: String) async {
        let renewal = configuration.watchRenewal.inMilliseconds
        while !Task.isCancelled {
            do {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                let here = watchedHere().map(\.rawValue).sorted()
                if !here.isEmpty {
                    try await storage.client.query(
                        PostgresQuery(
                            unsafeSQL: """
                                INSERT INTO \(schema).live_watch(instance, tenant, until)
                                SELECT $1, t, $3 FROM unnest($2::text[]) AS t
                                ON CONFLICT (instance, tenant) DO UPDATE SET until = excluded.until
                                """, binds: PostgresStorage.binds(instanceID, here, now + 3 * renewal)),
                        logger: logger)
                }
                try await storage.client.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(schema).live_watch WHERE until < $1",
                        binds: PostgresStorage.binds(now - 60_000)), logger: logger)
                let rows = try await storage.client.query(
                    PostgresQuery(
                        unsafeSQL:
                            "SELECT DISTINCT tenant FROM \(schema).live_watch WHERE instance <> $1 AND until > $2",
                        binds: PostgresStorage.binds(instanceID, now)), logger: logger)
                var elsewhere = Set<TenantID>()
                for try await tenant in rows.decode(String.self) { elsewhere.insert(TenantID(tenant)) }
                watchedElsewhere.withLock { $0 = elsewhere }
            } catch {
                if Task.isCancelled { return }
                logger.warning("live relay could not renew its watches", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.watchRenewal)
        }
    }
}
