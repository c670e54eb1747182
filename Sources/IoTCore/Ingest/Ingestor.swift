import Dispatch
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

/// The ingest pipeline: message → parser → resolve device and signals → convert and validate → stamp
/// server time → ``Journal`` → ``Receipt`` → batched commit to the ``PointStore``.
///
/// Transports do not call it: they submit to an ``IngestGateway`` (``DefaultIngestGateway`` over this
/// ingestor), which authenticates, picks the parser and counts refusals, and acknowledge the device only
/// when it answers ``IngestOutcome/stored(_:_:)``. The ingestor's own ``run()`` (it is a `Service`) replays
/// the journal on start and then commits journaled messages to the point store in batches.
///
/// ```swift
/// let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry, logger: logger)
/// let gateway = DefaultIngestGateway(ingestor: ingestor, authenticator: tokens)
/// let http = HTTPIngestTransport(configuration: .init(port: 8080), gateway: gateway)
/// let group = ServiceGroup(services: [ingestor, http], logger: logger)
/// ```
///
/// Accounting: every message ends in exactly one counter of ``statistics``:
/// `received = stored + rejected{reason} + dropped{reason} + inFlight` (also reported through
/// swift-metrics: `iot_ingest_received_total{transport}` and `iot_ingest_messages_total{outcome, transport,
/// reason}`). Each store transaction's time is the histogram `iot_ingest_commit_seconds`, the commit queue's
/// depth the gauge `iot_ingest_queue_points` (sampled by ``sampleMetrics()``).
///
/// Policies: a record whose device is not registered, or whose values name unknown signals, follows the
/// tenant's ``IngestPolicy``. A value that cannot be converted to its signal's type rejects the whole
/// message: a message is stored entirely or not at all. A record may name another device of the same
/// tenant than the sender (``DeviceRecord/identificationCode``, a gateway's child): the child must be
/// registered or registrable like any device.
public final class Ingestor: Service {
    /// Limits and timings of the pipeline.
    public struct Configuration: Sendable {
        /// Points journaled but not yet committed, at most. Past it, ``ingest(_:parser:identity:)`` throws
        /// ``IoTError/Code/backpressure``. Default 200 000.
        public var queueCapacityPoints: Int
        /// Points per store transaction, at most. Default 50 000: a store that keeps each series' points
        /// together (the SQLite store) rewrites a series' newest page once per transaction, so under a
        /// heavy stream larger transactions cost less per point (the MQTT benchmark's committed rate rose
        /// from about 73k to 83k messages/s, 10 000 → 50 000). A light stream commits small batches anyway.
        public var maxBatchPoints: Int
        /// The `Retry-After` suggested to devices under back-pressure. Default 1 000 ms.
        public var retryAfter: Duration
        /// How long a registry lookup is cached. Default 5 000 ms.
        public var registryCacheLifetime: Duration
        /// How long an unknown device is remembered as unknown. Default 1 000 ms.
        public var unknownDeviceCacheLifetime: Duration
        /// Records per message, at most. Default 10 000.
        public var maxRecordsPerMessage: Int
        /// First retry delay when the store fails; doubles up to 10 s. Default 200 ms.
        public var storeRetryDelay: Duration
        /// Group commit: under a steady stream, store transactions start at most this often. A small
        /// batch (under a quarter of ``maxBatchPoints``) taken sooner after the previous transaction
        /// started waits out the interval and takes what came meanwhile into the same transaction; a
        /// message after a quiet spell is committed at once. The device's answer never waits for it (it
        /// goes out on the journal receipt); only the moment the points become queryable (and reach the
        /// observers: rules, alarms) does, by this much at most. 0 turns it off.
        ///
        /// Default 100 ms, ThingsBoard's `batch_max_delay` for its timeseries writes. Each transaction has
        /// a fixed cost (the hand-off to the store's thread and back, locks, the WAL's commit frame, the
        /// journal sequence's page, the observers), and a store that keeps each series' points together
        /// rewrites the newest page of every series a transaction touches. With 10,000 devices sending one
        /// 10-signal message every 10 s (`iot-bench fleet`), 100 ms instead of 5 ms cut `iotd`'s CPU per
        /// message by about a quarter and the bytes it writes per message by two fifths.
        public var commitGather: Duration
        /// Group commit under a heavy stream: once a transaction held ``heavyBatchPoints`` points or more, the
        /// next starts at most this long after it (instead of ``commitGather``), for a host that keeps
        /// ``commitGather`` short for a light stream's latency. Default 100 ms, the same as ``commitGather``,
        /// which turns the distinction off; it is used only when longer than ``commitGather``.
        public var heavyCommitGather: Duration
        /// The transaction size from which the stream counts as heavy (see ``heavyCommitGather``). Default 500
        /// points.
        public var heavyBatchPoints: Int
        /// A per-device rate limit (ThingsBoard's `"100:1,2000:60"` form, ``RateLimit``) applied to every
        /// message of every transport, by the connected device (``DeviceIdentity``): a message over it is
        /// refused with ``IoTError/Code/rateLimited`` and its `retryAfterMillis`, and counted as rejected
        /// `rate_limited` (HTTP answers 429, CoAP 4.29, WebSocket and TCP an error reply; an MQTT message is
        /// counted). `nil` (the default): no limit.
        public var rateLimit: RateLimit?
        /// Devices the rate limiter tracks at most; idle devices are forgotten first. Default 100 000.
        public var rateLimitMaxDevices: Int

        /// Creates a configuration with the documented defaults.
        public init(
            queueCapacityPoints: Int = 200_000, maxBatchPoints: Int = 50_000, retryAfter: Duration = .seconds(1),
            registryCacheLifetime: Duration = .seconds(5), unknownDeviceCacheLifetime: Duration = .seconds(1),
            maxRecordsPerMessage: Int = 10_000, storeRetryDelay: Duration = .milliseconds(200),
            commitGather: Duration = .milliseconds(100), heavyCommitGather: Duration = .milliseconds(100),
            heavyBatchPoints: Int = 500, rateLimit: RateLimit? = nil, rateLimitMaxDevices: Int = 100_000
        ) {
            self.rateLimit = rateLimit
            self.rateLimitMaxDevices = rateLimitMaxDevices
            self.queueCapacityPoints = queueCapacityPoints
            self.maxBatchPoints = maxBatchPoints
            self.retryAfter = retryAfter
            self.registryCacheLifetime = registryCacheLifetime
            self.unknownDeviceCacheLifetime = unknownDeviceCacheLifetime
            self.maxRecordsPerMessage = maxRecordsPerMessage
            self.storeRetryDelay = storeRetryDelay
            self.commitGather = commitGather
            self.heavyCommitGather = heavyCommitGather
            self.heavyBatchPoints = heavyBatchPoints
        }

        /// Checks the documented ranges; each message starts with the key (`queueCapacityPoints: 0 is out of range; …`).
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            try IoTLimits.checkSetting(queueCapacityPoints, "queueCapacityPoints", in: 1...100_000_000)
            try IoTLimits.checkSetting(maxBatchPoints, "maxBatchPoints", in: 1...1_000_000)
            try IoTLimits.checkSetting(
                retryAfter.inMilliseconds, "retryAfterMillis", in: 0...IoTLimits.maxDurationMillis, unit: "ms")
            try IoTLimits.checkSetting(
                registryCacheLifetime.inMilliseconds, "registryCacheMillis", in: 0...IoTLimits.maxDurationMillis,
                unit: "ms")
            try IoTLimits.checkSetting(commitGather.inMilliseconds, "commitGatherMillis", in: 0...10_000, unit: "ms")
            try IoTLimits.checkSetting(
                heavyCommitGather.inMilliseconds, "heavyCommitGatherMillis", in: 0...10_000, unit: "ms")
            try IoTLimits.checkSetting(heavyBatchPoints, "heavyBatchPoints", in: 1...100_000_000)
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    let journal: any Journal
    let pointStore: any PointStore
    let registry: any RegistryStore
    let clock: any IoTClock
    let logger: Logger
    let directory: DeviceDirectory
    let queue: CommitQueue
    let accounting = IngestAccounting()
    let commitTimer = Timer(label: "iot_ingest_commit_seconds", preferredDisplayUnit: .seconds)
    private let queueGauge = Gauge(label: "iot_ingest_queue_points")

    /// Sets the gauge `iot_ingest_queue_points` to the points journaled and not yet committed; `/metrics`
    /// calls it before each scrape.
    public func sampleMetrics() {
        queueGauge.record(queueDepth)
    }
    let observers: [any PointObserver]
    let parsers: ParserRegistry?
    /// The per-device rate limit's buckets (``Configuration/rateLimit``).
    let limiter: DeviceRateLimiter?
    /// Server times of records without a device time, strictly increasing per device.
    let serverStamps = ServerStamps()
    /// Serialises journal append + enqueue, so the queue is in journal order.
    private let appendLock = Mutex(())
    let progress = Mutex(Progress())

    struct Progress {
        var ready = false
        var committedThrough: UInt64 = 0
        var waiters: [(UInt64, CheckedContinuation<Void, any Error>)] = []
        /// Callers of ``waitUntilReady()`` by their id.
        var readyWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextReadyWaiter: UInt64 = 0
        var lastTrim: Int64 = 0
    }

    /// Creates an ingestor. Nothing is accepted until ``run()`` has replayed the journal.
    ///
    /// `observers` see every committed batch (the rule engine, a live feed). With `parsers`, a message
    /// whose sender's product names a parser (``Product/parser``) goes through that parser instead of the
    /// one the transport passed; a product naming a parser that is not registered rejects its messages.
    public convenience init(
        configuration: Configuration = Configuration(),
        journal: any Journal,
        pointStore: any PointStore,
        registry: any RegistryStore,
        clock: any IoTClock = SystemClock(),
        observers: [any PointObserver] = [],
        parsers: ParserRegistry? = nil,
        logger: Logger = Logger(label: "iot.ingest")
    ) {
        self.init(
            configuration: configuration, journal: journal, pointStore: pointStore, registry: registry, clock: clock,
            observers: observers, parsers: parsers, rateLimitClock: nil, logger: logger)
    }

    /// ``init(configuration:journal:pointStore:registry:clock:observers:parsers:logger:)`` with the rate
    /// limiter's clock (monotonic nanoseconds), for tests.
    package init(
        configuration: Configuration, journal: any Journal, pointStore: any PointStore, registry: any RegistryStore,
        clock: any IoTClock, observers: [any PointObserver], parsers: ParserRegistry?,
        rateLimitClock: (@Sendable () -> Int64)?, logger: Logger
    ) {
        self.limiter = configuration.rateLimit.map {
            DeviceRateLimiter(limit: $0, maxDevices: configuration.rateLimitMaxDevices, clock: rateLimitClock)
        }
        self.configuration = configuration
        self.observers = observers
        self.parsers = parsers
        self.journal = journal
        self.pointStore = pointStore
        self.registry = registry
        self.clock = clock
        self.logger = logger
        self.directory = DeviceDirectory(
            registry: registry, clock: clock, ttlMillis: configuration.registryCacheLifetime.inMilliseconds,
            negativeTTLMillis: configuration.unknownDeviceCacheLifetime.inMilliseconds)
        self.queue = CommitQueue(capacity: configuration.queueCapacityPoints)
    }

    /// A snapshot of the accounting counters.
    public var statistics: IngestStatistics { accounting.snapshot }

    /// Whether the journal has been replayed and messages are accepted.
    public var isReady: Bool { progress.withLock { $0.ready } }

    /// Waits until ``isReady``: ``run()`` has replayed the journal and messages are accepted. A transport
    /// that starts before that gets ``IoTError/Code/backpressure`` (retry later) for every message; one that
    /// would rather hold its first read calls this first.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled first.
    public func waitUntilReady() async throws {
        let id = progress.withLock { p -> UInt64 in
            p.nextReadyWaiter += 1
            return p.nextReadyWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = progress.withLock { p in
                    if p.ready { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    p.readyWaiters[id] = c
                    return nil
                }
                if let now { c.resume(with: now) }
            }
        } onCancel: {
            progress.withLock { $0.readyWaiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }

    /// Points journaled or reserved and not yet committed (the queue depth).
    public var queueDepth: Int { queue.depth }
    /// Points accepted per tenant on the current UTC day, for ``TenantQuotas/pointsPerDay``.
    let dailyPoints = Mutex<[TenantID: (day: Int64, points: Int)]>([:])

    /// Waits until everything acknowledged so far is committed (the queue is empty), at most `timeout`.
    ///
    /// - Throws: ``IoTError/Code/timeout`` when the queue is not empty by then (the store may be failing; see
    ///   the log).
    public func waitUntilIdle(within timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while queueDepth > 0 {
            guard ContinuousClock.now < deadline else {
                throw IoTError(
                    .timeout, "the ingestor still holds \(queueDepth) uncommitted points after \(timeout); try again")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Drops cached registry data of a tenant (or one device), so the next message reads it again.
    /// Call it after changing devices or products in the registry for the change to apply at once.
    public func invalidate(tenant: TenantID, device: String? = nil) {
        directory.invalidate(tenant: tenant, device: device)
    }

    // MARK: - Ingest

    /// Parses a message and journals its records; returns when the device may be acknowledged.
    ///
    /// - Parameters:
    ///   - message: what the transport received. Its ``InboundMessage/receivedAt`` is set from the clock
    ///     when `nil`, and its ``InboundMessage/deviceUID`` from `identity` when `nil`.
    ///   - parser: the parser for this message.
    ///   - identity: the authenticated sender.
    /// - Throws: ``IoTError``: ``IoTError/Code/backpressure`` (retry later; nothing was accepted),
    ///   ``IoTError/Code/malformedPayload``, ``IoTError/Code/unknownDevice``,
    ///   ``IoTError/Code/unknownSignal``, ``IoTError/Code/invalidValue`` (rejected and counted), or
    ///   ``IoTError/Code/journal`` (the journal cannot be written).
    package func ingest(_ message: InboundMessage, parser: any Parser, identity: DeviceIdentity) async throws(IoTError)
        -> Receipt
    {
        let now = clock.now()
        var message = stamped(message, identity, now: now)
        if let receipt = try ingestCached(message, parser: parser, identity: identity, now: now) { return receipt }
        accounting.received(message.transport)
        let records: [DeviceRecord]
        do {
            let chosen = try await productParser(for: identity, default: parser)
            if message.fromGateway == nil, !identity.deviceUID.isEmpty {
                message.fromGateway = try? await directory.device(identity).map { $0.gateway != nil }
            }
            records = try chosen.parse(message)
        } catch {
            accounting.rejected(message.transport, error.code.name)
            throw error
        }
        return try await accept(
            records, transport: message.transport, receivedAt: message.receivedAt!, identity: identity)
    }

    /// The name of the parser the sender's product names (``Product/parser``), or `nil` when it names
    /// none or this ingestor has no ``ParserRegistry``. A transport that chooses a parser by content
    /// type asks this before refusing a type it does not know: the product's parser decides instead.
    package func productParserName(for identity: DeviceIdentity) async throws(IoTError) -> String? {
        guard parsers != nil else { return nil }
        do {
            return try await directory.device(identity)?.parser
        } catch {
            throw IoTError(.storage, "the registry failed while choosing a parser: \(error)")
        }
    }

    /// The parser the sender's product names, when a registry is configured and the product names one;
    /// otherwise `parser`.
    private func productParser(for identity: DeviceIdentity, default parser: any Parser) async throws(IoTError)
        -> any Parser
    {
        guard let parsers, let name = try await productParserName(for: identity), name != parser.name else {
            return parser
        }
        guard let named = parsers.parser(named: name) else {
            throw IoTError(
                .invalidArgument,
                "the product of device '\(identity.deviceUID)' names parser '\(name)', which is not registered; register it or change the product"
            )
        }
        return named
    }

    /// Journals records that a transport decoded itself (a Modbus poller, a custom transport), received at
    /// `receivedAt` (the clock's now when `nil`).
    package func ingest(
        _ records: [DeviceRecord], transport: String, receivedAt: Int64? = nil, identity: DeviceIdentity
    )
        async throws(IoTError) -> Receipt
    {
        accounting.received(transport)
        return try await accept(
            records, transport: transport, receivedAt: receivedAt ?? clock.now(), identity: identity)
    }

    /// The blocking form of ``ingest(_:parser:identity:)`` for threads that are not part of Swift's
    /// cooperative pool: a C library's callback thread (libmosquitto's `on_message`), which must not
    /// return before the message is journaled. Never call it from an `async` context.
    ///
    /// When the sender's tenant and devices are in the ingestor's cache (every message after a device's
    /// first, within ``Configuration/registryCacheLifetime``), the whole pipeline runs on the calling thread
    /// with no task hop; otherwise it waits for a task that runs ``ingest(_:parser:identity:)``.
    package func ingestBlocking(_ message: InboundMessage, parser: any Parser, identity: DeviceIdentity)
        throws(IoTError)
        -> Receipt
    {
        let now = clock.now()
        let message = stamped(message, identity, now: now)
        if let receipt = try ingestCached(message, parser: parser, identity: identity, now: now) { return receipt }
        return try blockingOnTask { () async throws(IoTError) in
            try await self.ingest(message, parser: parser, identity: identity)
        }
    }

    /// The non-waiting form of ``ingest(_:parser:identity:)`` for an I/O thread that must never wait for a
    /// task (libcoap's): when the sender's tenant and devices are in the ingestor's cache, parses, resolves
    /// and journals the message on the calling thread and returns its receipt; otherwise returns `nil`
    /// having counted nothing, and the caller hands the message to ``ingest(_:parser:identity:)`` on a
    /// task, which loads what is missing. The only wait is the journal's own write.
    ///
    /// - Throws: as ``ingest(_:parser:identity:)``; a rejection is counted.
    package func ingestIfCached(_ message: InboundMessage, parser: any Parser, identity: DeviceIdentity)
        throws(IoTError)
        -> Receipt?
    {
        let now = clock.now()
        return try ingestCached(stamped(message, identity, now: now), parser: parser, identity: identity, now: now)
    }

    /// A message parsed and resolved on the calling thread, ready for the journal.
    private enum Prepared {
        /// Something it needs is not cached (or the ingestor is not ready); nothing was counted.
        case miss
        /// Resolved into `points` from `records` records; not counted yet.
        case ready(points: [Point], records: Int)
    }

    /// The pipeline on the calling thread, from cached registry data only. Returns `nil`, having counted
    /// nothing, when something is not cached (or the ingestor is not ready): the caller then takes the
    /// `async` path, which loads it and counts the message. `now` is the clock's time (for the caches).
    private func ingestCached(_ message: InboundMessage, parser: any Parser, identity: DeviceIdentity, now: Int64)
        throws(IoTError) -> Receipt?
    {
        guard
            case .ready(let points, let records) = try prepareCached(
                message, parser: parser, identity: identity, now: now)
        else {
            return nil
        }
        accounting.received(message.transport)
        return try journal(points, records: records, transport: message.transport, identity: identity)
    }

    /// Parses and resolves a message from cached registry data. A rejection is counted (received and
    /// rejected) and thrown. `now` is the clock's time, which the caches' entries are checked against.
    private func prepareCached(_ message: InboundMessage, parser: any Parser, identity: DeviceIdentity, now: Int64)
        throws(IoTError) -> Prepared
    {
        guard isReady else { return .miss }
        var chosen = parser
        var message = message
        var cachedSender: DeviceDirectory.ResolvedDevice?
        if !identity.deviceUID.isEmpty {
            switch directory.cachedDevice(identity, now: now) {
            case .hit(let sender):
                cachedSender = sender
                if let parsers, let name = sender.parser, name != parser.name {
                    guard let named = parsers.parser(named: name) else { return .miss }
                    chosen = named
                }
                if message.fromGateway == nil { message.fromGateway = sender.gateway != nil }
            case .absent:
                if parsers != nil { return .miss }
                if message.fromGateway == nil { message.fromGateway = false }
            case .miss:
                // The sender decides the parser and whether the message may name other devices.
                return .miss
            }
        }
        do throws(IoTError) {
            let records = try chosen.parse(message)
            try checkRecordCount(records.count)
            guard
                let points = try resolveCached(
                    records, receivedAt: message.receivedAt!, identity: identity, now: now, sender: cachedSender)
            else {
                return .miss
            }
            try admit(identity)
            return .ready(points: points, records: records.count)
        } catch {
            accounting.received(message.transport)
            accounting.rejected(message.transport, error.code.name)
            throw error
        }
    }

    /// A message, or records a transport decoded, for ``ingestBlocking(_:)``.
    package struct BlockingItem: Sendable {
        enum Content {
            case message(InboundMessage, parser: any Parser)
            case records([DeviceRecord], transport: String, receivedAt: Int64?)
        }
        let content: Content
        /// The authenticated sender.
        package let identity: DeviceIdentity
        /// The transport it came through (kept apart so that reading it does not copy the content).
        let transport: String

        /// A message for `parser`.
        package init(_ message: InboundMessage, parser: any Parser, identity: DeviceIdentity) {
            self.content = .message(message, parser: parser)
            self.identity = identity
            self.transport = message.transport
        }

        /// Records decoded by `transport`, received at `receivedAt` (the clock's now when `nil`).
        package init(records: [DeviceRecord], transport: String, receivedAt: Int64?, identity: DeviceIdentity) {
            self.content = .records(records, transport: transport, receivedAt: receivedAt)
            self.identity = identity
            self.transport = transport
        }
    }

    /// ``ingestBlocking(_:parser:identity:)`` for a burst of messages (an MQTT read pass), in order, with
    /// one journal write for all the messages that resolve from cached registry data when the journal is
    /// a ``BatchJournal``. Returns one result per message, in order; each message is counted as by
    /// ``ingest(_:parser:identity:)``. Once one message meets back-pressure, every later one fails with it
    /// too, so a caller that retries from the first failure keeps the messages in order. Never call it
    /// from an `async` context.
    package func ingestBlocking(_ items: [BlockingItem]) -> [Result<Receipt, IoTError>] {
        // Every place is answered below; this value is only what the array is made with.
        var results = [Result<Receipt, IoTError>](repeating: Self.unanswered, count: items.count)
        var ready: [Resolved] = []
        var blocked: IoTError?
        func note(_ r: Result<Receipt, IoTError>, at i: Int) {
            results[i] = r
            if blocked == nil, case .failure(let e) = r, e.code == .backpressure { blocked = e }
        }
        func flush() { journal(&ready) { note($1, at: $0) } }
        // One reading of the clock for the burst: its messages arrived together.
        let now = clock.now()
        for i in items.indices {
            if let blocked {
                results[i] = .failure(droppedBehind(blocked, items[i].transport))
                continue
            }
            do throws(IoTError) {
                switch try prepareCached(items[i], now: now) {
                case .ready(let points, let records):
                    ready.append(
                        Resolved(
                            index: i, points: points, records: records, transport: items[i].transport,
                            identity: items[i].identity))
                case .miss:
                    flush()  // keeps journal order
                    if let blocked {
                        results[i] = .failure(droppedBehind(blocked, items[i].transport))
                        continue
                    }
                    note(Result { () throws(IoTError) in try ingestLoading(items[i], now: now) }, at: i)
                }
            } catch {
                results[i] = .failure(error)
            }
        }
        flush()
        return results
    }

    /// What a result array is made with before its places are answered.
    private static let unanswered = Result<Receipt, IoTError>.success(Receipt(sequence: 0, records: 0, points: 0))

    /// An item of ``ingestBlocking(_:)`` parsed and resolved from cached registry data, or a miss.
    private func prepareCached(_ item: BlockingItem, now: Int64) throws(IoTError) -> Prepared {
        switch item.content {
        case .message(let message, let parser):
            try prepareCached(
                stamped(message, item.identity, now: now), parser: parser, identity: item.identity, now: now)
        case .records(let records, let transport, let receivedAt):
            try prepareCached(
                records, transport: transport, receivedAt: receivedAt ?? now, identity: item.identity, now: now)
        }
    }

    /// An item of ``ingestBlocking(_:)`` that missed the caches: ingested on a task that loads what is missing,
    /// while the calling thread waits.
    private func ingestLoading(_ item: BlockingItem, now: Int64) throws(IoTError) -> Receipt {
        switch item.content {
        case .message(let message, let parser):
            return try ingestBlocking(
                stamped(message, item.identity, now: now), parser: parser, identity: item.identity)
        case .records(let records, let transport, let receivedAt):
            let receivedAt = receivedAt ?? now
            let identity = item.identity
            return try blockingOnTask { () async throws(IoTError) in
                try await self.ingest(records, transport: transport, receivedAt: receivedAt, identity: identity)
            }
        }
    }

    /// Decoded records resolved from cached registry data, ready for the journal, or a miss (nothing
    /// counted). A rejection is counted (received and rejected) and thrown.
    private func prepareCached(
        _ records: [DeviceRecord], transport: String, receivedAt: Int64, identity: DeviceIdentity, now: Int64
    )
        throws(IoTError) -> Prepared
    {
        guard isReady else { return .miss }
        do throws(IoTError) {
            try checkRecordCount(records.count)
            guard let points = try resolveCached(records, receivedAt: receivedAt, identity: identity, now: now) else {
                return .miss
            }
            try admit(identity)
            return .ready(points: points, records: records.count)
        } catch {
            accounting.received(transport)
            accounting.rejected(transport, error.code.name)
            throw error
        }
    }

    /// A message of a batch resolved from cached registry data and waiting for the batch's journal write;
    /// `index` is its place in the caller's results. A struct, not a tuple: an array of tuples is read through
    /// the runtime's generic tuple copy (`iot-bench mqtt-path`: the loop thread 9 % slower).
    private struct Resolved {
        var index: Int
        var points: [Point]
        var records: Int
        var transport: String
        var identity: DeviceIdentity
    }

    /// Journals the waiting messages of a batch, hands each result to `place` with its index, and empties
    /// `ready`.
    private func journal(_ ready: inout [Resolved], _ place: (Int, Result<Receipt, IoTError>) -> Void) {
        guard !ready.isEmpty else { return }
        for (k, r) in journal(batch: ready).enumerated() {
            place(ready[k].index, r)
        }
        ready.removeAll(keepingCapacity: true)
    }

    /// Journals resolved messages (counted as received here), in one write when the journal is a
    /// ``BatchJournal``.
    private func journal(batch: [Resolved]) -> [Result<Receipt, IoTError>] {
        guard batch.count > 1, let batchJournal = journal as? any BatchJournal else {
            return batch.map { m in
                accounting.received(m.transport)
                return Result { () throws(IoTError) in
                    try journal(m.points, records: m.records, transport: m.transport, identity: m.identity)
                }
            }
        }
        var results = [Result<Receipt, IoTError>](repeating: Self.unanswered, count: batch.count)
        var admitted: [Int] = []
        var full = false
        // Counted as received per run of one transport (one count for a read pass), before any outcome.
        var runStart = 0
        for i in 1...batch.count where i == batch.count || batch[i].transport != batch[runStart].transport {
            accounting.received(batch[runStart].transport, count: i - runStart)
            runStart = i
        }
        for (i, m) in batch.enumerated() {
            if m.points.isEmpty {
                accounting.storedEmpty(m.transport)
                results[i] = .success(Receipt(sequence: 0, records: m.records, points: 0))
            } else if !full && queue.reserve(m.points.count) {
                admitted.append(i)
            } else {
                full = true  // later messages wait too, so they stay behind this one
                results[i] = .failure(refusedForRoom(m.transport))
            }
        }
        if !admitted.isEmpty {
            do {
                try appendLock.withLock { (_) throws(IoTError) in
                    let first = try batchJournal.append(
                        batch: admitted.map { (batch[$0].identity.tenant, batch[$0].points) })
                    var items: [CommitQueue.Item] = []
                    items.reserveCapacity(admitted.count)
                    for (k, i) in admitted.enumerated() {
                        let m = batch[i]
                        let seq = first + UInt64(k)
                        items.append(
                            CommitQueue.Item(
                                sequence: seq, tenant: m.identity.tenant, points: m.points, transport: m.transport))
                        results[i] = .success(Receipt(sequence: seq, records: m.records, points: m.points.count))
                    }
                    queue.enqueue(contentsOf: items)
                }
                accounting.journaled(count: admitted.count)
            } catch {
                logger.error("journal append failed", metadata: ["error": "\(error)", "messages": "\(admitted.count)"])
                for i in admitted {
                    queue.cancel(batch[i].points.count)
                    accounting.dropped(batch[i].transport, "journal")
                    results[i] = .failure(error)
                }
            }
        }
        return results
    }

    /// `message` with its defaults filled in: ``InboundMessage/receivedAt`` from the clock and
    /// ``InboundMessage/deviceUID`` from the sender.
    private func stamped(_ message: InboundMessage, _ identity: DeviceIdentity, now: Int64) -> InboundMessage {
        var message = message
        if message.receivedAt == nil { message.receivedAt = now }
        if message.deviceUID == nil { message.deviceUID = identity.deviceUID }
        return message
    }

    private func checkRecordCount(_ count: Int) throws(IoTError) {
        guard count <= configuration.maxRecordsPerMessage else {
            throw IoTError(
                .payloadTooLarge,
                "message holds \(count) records, over the limit of \(configuration.maxRecordsPerMessage); split it")
        }
    }

    /// Takes one message of `identity` from the rate limit (``Configuration/rateLimit``), or throws
    /// ``IoTError/Code/rateLimited`` (the caller counts it as rejected). Every message passes here once, once
    /// it is parsed and before anything is registered or journaled, whichever entry point it came through:
    /// the cached paths once their registry data is found, the `async` path before resolving.
    private func admit(_ identity: DeviceIdentity) throws(IoTError) {
        guard let limiter, let waitMillis = limiter.acquire(identity) else { return }
        throw IoTError(
            .rateLimited,
            "device \(identity.deviceUID) is over its rate limit of \(limiter.limit); retry after \(waitMillis) ms",
            retryAfterMillis: waitMillis)
    }

    /// Counts a message (already counted as received) dropped because the queue has no room, and returns
    /// the error for its sender.
    private func refusedForRoom(_ transport: String) -> IoTError {
        let closed = queue.isClosed
        accounting.dropped(transport, closed ? "shutdown" : "backpressure")
        return IoTError(
            closed ? .shutdown : .backpressure,
            closed
                ? "the ingestor is shutting down; retry later"
                : "the store is behind (\(queue.depth) points waiting); retry after \(configuration.retryAfter.inMilliseconds) ms",
            retryAfterMillis: configuration.retryAfter.inMilliseconds)
    }

    /// Counts a message of a burst that comes after one refused for back-pressure: received and dropped
    /// with the same error, so that it stays behind that one.
    private func droppedBehind(_ error: IoTError, _ transport: String) -> IoTError {
        accounting.received(transport)
        accounting.dropped(transport, "backpressure")
        return error
    }

    private func accept(_ records: [DeviceRecord], transport: String, receivedAt: Int64, identity: DeviceIdentity)
        async throws(IoTError) -> Receipt
    {
        guard isReady else {
            accounting.dropped(transport, queue.isClosed ? "shutdown" : "starting")
            throw IoTError(
                queue.isClosed ? .shutdown : .backpressure,
                queue.isClosed
                    ? "the ingestor is shutting down; retry against another instance or later"
                    : "the ingestor is starting (replaying its journal); retry shortly",
                retryAfterMillis: configuration.retryAfter.inMilliseconds)
        }
        let points: [Point]
        do throws(IoTError) {
            try checkRecordCount(records.count)
            try admit(identity)
            points = try await resolve(records, receivedAt: receivedAt, identity: identity)
        } catch {
            accounting.rejected(transport, error.code.name)
            throw error
        }
        return try journal(points, records: records.count, transport: transport, identity: identity)
    }

    /// Reserves queue room for resolved points, appends them to the journal and queues them for the
    /// store; the message has been counted as received.
    private func journal(_ points: [Point], records: Int, transport: String, identity: DeviceIdentity)
        throws(IoTError) -> Receipt
    {
        if points.isEmpty {
            accounting.storedEmpty(transport)
            return Receipt(sequence: 0, records: records, points: 0)
        }
        guard queue.reserve(points.count) else { throw refusedForRoom(transport) }
        let sequence: UInt64
        do {
            sequence = try appendLock.withLock { (_) throws(IoTError) -> UInt64 in
                let seq = try journal.append(tenant: identity.tenant, points: points)
                queue.enqueue(
                    CommitQueue.Item(sequence: seq, tenant: identity.tenant, points: points, transport: transport))
                return seq
            }
        } catch {
            queue.cancel(points.count)
            accounting.dropped(transport, "journal")
            logger.error("journal append failed", metadata: ["error": "\(error)"])
            throw error
        }
        accounting.journaled()
        return Receipt(sequence: sequence, records: records, points: points.count)
    }

    /// Waits until the message of `receipt` is committed to the point store (read-your-writes).
    public func waitUntilCommitted(_ receipt: Receipt) async throws {
        if receipt.sequence == 0 { return }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let now = progress.withLock { p -> Bool in
                if p.committedThrough >= receipt.sequence { return true }
                p.waiters.append((receipt.sequence, c))
                return false
            }
            if now { c.resume() }
        }
    }
}

/// Runs `body` on a task and blocks the calling thread (not one of the cooperative pool's) until it ends: the
/// `.wait` shape of ``IngestGateway/submitBlocking(_:onCacheMiss:)`` on a C library's thread.
func blockingOnTask<T: Sendable>(_ body: @escaping @Sendable () async throws(IoTError) -> T) throws(IoTError) -> T {
    let box = Mutex<Result<T, IoTError>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let r: Result<T, IoTError>
        do throws(IoTError) {
            r = .success(try await body())
        } catch {
            r = .failure(error)
        }
        box.withLock { $0 = r }
        done.signal()
    }
    done.wait()
    return try box.withLock { $0! }.get()
}

extension Ingestor.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey {
        case queueCapacityPoints, maxBatchPoints, retryAfterMillis, registryCacheMillis, rateLimit
        case commitGatherMillis, heavyCommitGatherMillis, heavyBatchPoints
    }

    /// Reads the settings a configuration file may give (`ingest:` in iotd.yaml); the others keep their
    /// defaults. `rateLimit` is written as text, `"100:1,2000:60"`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            queueCapacityPoints: try c.decode(.queueCapacityPoints, or: d.queueCapacityPoints),
            maxBatchPoints: try c.decode(.maxBatchPoints, or: d.maxBatchPoints),
            retryAfter: try c.decodeMillis(.retryAfterMillis, or: d.retryAfter),
            registryCacheLifetime: try c.decodeMillis(.registryCacheMillis, or: d.registryCacheLifetime),
            commitGather: try c.decodeMillis(.commitGatherMillis, or: d.commitGather),
            heavyCommitGather: try c.decodeMillis(.heavyCommitGatherMillis, or: d.heavyCommitGather),
            heavyBatchPoints: try c.decode(.heavyBatchPoints, or: d.heavyBatchPoints),
            rateLimit: try c.decodeIfPresent(RateLimit.self, forKey: .rateLimit))
    }
}
