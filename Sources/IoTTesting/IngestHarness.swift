import Foundation
public import IoTCore
import Logging
public import ServiceLifecycle
import Synchronization

/// A running ``IoTCore/Ingestor`` over in-memory stores, seeded with one tenant, one product and a few
/// devices: what a transport, a parser or a custom ``IoTCore/PollingTransport`` is tested against, with no
/// database, journal file or network. A test of the real stores passes its own (a SQLite registry and point
/// store, a file journal) and keeps the rest.
///
/// The seed: tenant ``tenant`` (`acme`); product ``product`` (`thermo`: numbers `temp`, `hum` and `seq`, the
/// bool `on` and the text `fw`); devices ``deviceUIDs`` of that product (`t-1`, `d-1`, `d-2`, `d-3`). The
/// ingestor reads time from ``clock`` (a ``ManualClock`` at 1,700,000,000,000 ms) unless `systemClock` is set.
///
/// ```swift
/// let h = try await IngestHarness(start: false)
/// try await h.withRunning([myTransport]) {
///     // drive the transport as a device would …
///     let points = try await h.waitForPoints("t-1", "temp", count: 1)
///     #expect(points.first?.value == .number(21.5))
/// }
/// ```
public final class IngestHarness: Sendable {
    /// The seeded tenant.
    public static let tenant: TenantID = "acme"
    /// The seeded product.
    public static let product = Product(
        id: "thermo",
        signals: [
            Signal(name: "temp"), Signal(name: "hum"), Signal(name: "seq"), Signal(name: "on", type: .bool),
            Signal(name: "fw", type: .text),
        ])
    /// The seeded devices, all of ``product``.
    public static let deviceUIDs = ["t-1", "d-1", "d-2", "d-3"]

    /// The journal the ingestor appends to (an ``InMemoryJournal`` unless one was passed).
    public let journal: any Journal
    /// The store the ingestor commits to (an ``InMemoryPointStore`` unless one was passed).
    public let points: any PointStore
    /// Tenants, products and devices (an ``InMemoryRegistryStore`` unless one was passed).
    public let registry: any RegistryStore
    /// The ingestor's clock, unless the harness was made with `systemClock`.
    public let clock: ManualClock
    /// The ingestor under test.
    public let ingestor: Ingestor
    /// The front door over ``ingestor`` that transports under test submit to: a ``IoTCore/DefaultIngestGateway``
    /// with the harness's authenticator (none unless one was passed: then only
    /// ``IoTCore/IngestSubmission/Sender/device(_:)`` submissions are taken) and gateway configuration.
    public let gateway: DefaultIngestGateway
    /// The access scope of ``tenant``.
    public var scope: AccessScope { .tenant(Self.tenant) }
    private let running = Mutex<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)

    /// Creates the stores, seeds them (unless `registry` already holds ``tenant``) and, with `start`, runs the
    /// ingestor and waits until it is ready.
    ///
    /// - Parameters:
    ///   - policy: the tenant's handling of unknown devices and signals.
    ///   - configuration: the ingestor's configuration.
    ///   - journal, points, registry: stores to reuse (a restart test passes the same ones twice) or to test
    ///     (a SQLite store, a point store that blocks).
    ///   - devices: the uids of the seeded devices (all of ``product``); default ``deviceUIDs``.
    ///   - seeded: `false` leaves the registry as it is (a test that creates its tenant through an API).
    ///   - systemClock: the ingestor stamps and waits on the system clock instead of ``clock``.
    ///   - observers: what the ingestor tells of each committed batch (a rule engine, a live feed).
    ///   - rateLimitClock: the clock of the per-device rate limit, in monotonic nanoseconds (the system's
    ///     otherwise).
    ///   - authenticator: what ``gateway`` resolves credentials with.
    ///   - gatewayConfiguration: the gateway's configuration (its authentication cache).
    ///   - cacheClock: the clock of the gateway's authentication cache, in monotonic nanoseconds (the
    ///     system's otherwise).
    ///   - start: run the ingestor now (``start(_:)`` later otherwise).
    public init(
        policy: IngestPolicy = IngestPolicy(), configuration: Ingestor.Configuration = .init(),
        journal: any Journal = InMemoryJournal(), points: any PointStore = InMemoryPointStore(),
        registry: any RegistryStore = InMemoryRegistryStore(), devices: [String] = IngestHarness.deviceUIDs,
        seeded: Bool = true, systemClock: Bool = false, observers: [any PointObserver] = [],
        rateLimitClock: (@Sendable () -> Int64)? = nil,
        authenticator: (any DeviceAuthenticator)? = nil,
        gatewayConfiguration: DefaultIngestGateway.Configuration = .init(),
        cacheClock: (@Sendable () -> Int64)? = nil, start: Bool = true
    ) async throws {
        self.journal = journal
        self.points = points
        self.registry = registry
        let clock = ManualClock(now: 1_700_000_000_000)
        self.clock = clock
        if seeded, try await registry.tenant(Self.tenant) == nil {
            try await registry.saveTenant(Tenant(id: Self.tenant, policy: policy))
            try await registry.saveProduct(.tenant(Self.tenant), Self.product)
            for uid in devices {
                try await registry.saveDevice(.tenant(Self.tenant), Device(uid: uid, product: Self.product.id))
            }
        }
        ingestor = Ingestor(
            configuration: configuration, journal: journal, pointStore: points, registry: registry,
            clock: systemClock ? SystemClock() : clock, observers: observers, parsers: nil,
            rateLimitClock: rateLimitClock, logger: Logger(label: "iot.test.ingest"))
        gateway = DefaultIngestGateway(
            ingestor: ingestor, authenticator: authenticator, configuration: gatewayConfiguration,
            cacheClock: cacheClock, logger: Logger(label: "iot.test.gateway"))
        if start { try await self.start() }
    }

    /// Runs the ingestor and `services` (transports) in one `ServiceGroup`, as a daemon does, and waits until
    /// the ingestor is ready (its journal replayed).
    ///
    /// - Parameters:
    ///   - services: what runs after the ingestor (and stops before it).
    ///   - withIngestor: `false` runs `services` alone: what a transport does while the ingestor has not
    ///     started (it is never ready).
    /// - Throws: ``IoTCore/IoTError/Code/conflict`` when the harness runs already (made with `start: true`, or
    ///   started before): make it with `start: false` to run transports with it.
    public func start(_ services: [any Service] = [], withIngestor: Bool = true) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: (withIngestor ? [ingestor] : []) + services, logger: Logger(label: "iot.test.group")))
        let started = running.withLock { r -> Bool in
            guard r == nil else { return false }
            r = (group, Task { try await group.run() })
            return true
        }
        guard started else {
            throw IoTError(
                .conflict,
                "the harness runs already; make it with IngestHarness(start: false) to start it with services")
        }
        if withIngestor { try await waitUntilReady() }
    }

    /// Waits until the ingestor accepts messages (it replays its journal first).
    public func waitUntilReady() async throws {
        try await ingestor.waitUntilReady()
    }

    /// Shuts the services down gracefully, in reverse order (transports first, then the ingestor, which commits
    /// what it acknowledged), and waits until they have stopped.
    ///
    /// - Throws: what a service's `run()` threw (a clean stop throws nothing).
    public func stopChecked() async throws {
        guard
            let (group, task) = running.withLock({ r in
                defer { r = nil }
                return r
            })
        else { return }
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// ``stopChecked()``, ignoring what a service threw.
    public func stop() async {
        try? await stopChecked()
    }

    /// Runs the ingestor and `services`, then `body`, then stops them, also when `body` throws. Make the harness
    /// with `start: false` for this.
    public func withRunning<T>(_ services: [any Service] = [], _ body: () async throws -> T) async throws -> T {
        try await start(services)
        do {
            let result = try await body()
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }

    /// A message from `device` over the transport `test`.
    public func message(_ text: String, device: String = "t-1") -> InboundMessage {
        InboundMessage(transport: "test", deviceUID: device, text: text)
    }

    /// Submits `text` from `device` through `parser` to ``gateway``, as a transport would; returns the
    /// receipt.
    ///
    /// - Throws: the refusal's error.
    @discardableResult
    public func send(_ text: String, parser: any Parser = JSONParser(), device: String = "t-1") async throws(IoTError)
        -> Receipt
    {
        try await gateway.submit(
            .message(
                message(text, device: device), parser: parser,
                from: .device(DeviceIdentity(tenant: Self.tenant, deviceUID: device)))
        ).result.get()
    }

    /// Waits until the ingestor's queue is empty (everything acknowledged is committed).
    public func drain() async throws {
        while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(1)) }
    }

    /// Every point of `device`'s `signal`, oldest first.
    public func series(_ device: String, _ signal: String) async throws -> [Point] {
        try await points.range(
            scope, series: SeriesKey(device: device, signal: signal), from: 0, to: .max, limit: nil, order: .ascending)
    }

    /// Waits until `device`'s `signal` has at least `count` points and returns them.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/timeout`` after `timeout`, naming the series and what it holds.
    public func waitForPoints(
        _ device: String, _ signal: String, count: Int, timeout: Duration = .seconds(10)
    ) async throws -> [Point] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let got = try await series(device, signal)
            if got.count >= count { return got }
            if ContinuousClock.now > deadline {
                throw IoTError(.timeout, "\(device).\(signal): \(got.count) points after \(timeout), expected \(count)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
