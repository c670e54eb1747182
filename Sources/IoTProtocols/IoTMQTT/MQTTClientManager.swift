import Glibc
public import IoTCore
public import Logging
import Metrics
public import ServiceLifecycle

/// Runs the MQTT ingest clients of one instance: create, update, remove, list and monitor them at run time,
/// within limits, on a small fixed set of loop threads.
///
/// All clients share one ``MQTTEventLoopGroup`` (``Configuration/threads`` threads, `epoll`), never a
/// thread per client. A request over a limit fails with ``IoTCore/IoTError/Code/conflict`` and a reason
/// (the management API answers 409); a request that fails for any reason leaves nothing behind. Where a
/// client runs is asked of an ``MQTTClientPlacement``; the default, ``LocalPlacement``, runs every client
/// here.
///
/// While clients run, ``run()`` measures the instance once a second (resident memory, CPU share, each
/// client's inbound bytes) and holds a client over its share of a limit it exceeds to that share
/// (``IoTCore/MQTTClientThrottle``: its reading pauses once a second's budget is spent, the broker keeps the
/// rest), counted in `iot_mqtt_client_throttled_total{client, reason}` and shown in the client's report.
///
/// ```swift
/// let manager = MQTTClientManager(gateway: gateway, logger: logger)
/// let report = try await manager.create(spec)       // spec: MQTTClientSpec, e.g. decoded from JSON
/// let all = await manager.list()
/// try await manager.remove(id: spec.id)
/// ```
public actor MQTTClientManager: Service {
    /// Limits of one instance. `nil` means no limit.
    public struct Limits: Sendable, Codable, Hashable {
        /// Clients at most. Default 1 000.
        public var maxClients: Int?
        /// No new client while the process's resident memory is at or over this many bytes.
        public var maxMemoryBytes: Int?
        /// No new client while the process uses this share of the machine's CPU or more (0–1, over the
        /// last second, all cores counted).
        public var maxCPUShare: Double?
        /// No new client while the clients together receive this many payload bytes per second or more;
        /// while they do, each client reads at most this over the number of clients.
        public var maxInboundBytesPerSecond: Int?
        /// Clients at most per loop thread (``Configuration/threads``): the instance's capacity grows with its
        /// threads.
        public var maxClientsPerThread: Int?

        /// Creates limits; by default only the client count (1 000) is limited.
        public init(
            maxClients: Int? = 1_000, maxMemoryBytes: Int? = nil, maxCPUShare: Double? = nil,
            maxInboundBytesPerSecond: Int? = nil, maxClientsPerThread: Int? = nil
        ) {
            self.maxClients = maxClients
            self.maxMemoryBytes = maxMemoryBytes
            self.maxCPUShare = maxCPUShare
            self.maxInboundBytesPerSecond = maxInboundBytesPerSecond
            self.maxClientsPerThread = maxClientsPerThread
        }
    }

    /// Threads and limits.
    public struct Configuration: Sendable {
        /// Loop threads for all clients. Default 2.
        public var threads: Int
        /// Limits.
        public var limits: Limits
        /// Which brokers a client created or changed through the JSON administration calls (the management
        /// API) may connect to: a broker on a loopback, private or link-local address needs an entry of its
        /// allow-list. Clients created in code (``create(_:)``) are not checked. Default: public brokers only.
        public var outbound: OutboundPolicy
        /// Creates a configuration with the documented defaults.
        public init(threads: Int = 2, limits: Limits = Limits(), outbound: OutboundPolicy = OutboundPolicy()) {
            self.threads = threads
            self.limits = limits
            self.outbound = outbound
        }

        /// Checks `threads` (1 to 64 loop threads) and the limits' ranges.
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            try IoTLimits.checkSetting(threads, "threads", in: 1...64)
            if let n = limits.maxClientsPerThread {
                try IoTLimits.checkSetting(n, "limits.maxClientsPerThread", in: 1...1_000_000)
            }
            if let share = limits.maxCPUShare { try IoTLimits.checkSetting(share, "limits.maxCPUShare", in: 0.01...1) }
            if let rate = limits.maxInboundBytesPerSecond {
                try IoTLimits.checkSetting(rate, "limits.maxInboundBytesPerSecond", in: 1_024...Int.max)
            }
        }
    }

    /// One client as the manager reports it (``IoTCore/MQTTClientReport``).
    public typealias Report = MQTTClientReport

    /// The instance's load, as placement sees it.
    public struct Load: Sendable, Codable, Hashable {
        /// Clients running here.
        public var clients: Int
        /// The limit on clients.
        public var capacity: Int?
        /// Resident memory in bytes.
        public var memoryBytes: Int
        /// CPU share over the last second (0–1, all cores).
        public var cpuShare: Double
        /// Inbound payload bytes per second.
        public var inboundBytesPerSecond: Int
        /// Loop threads.
        public var threads: Int
    }

    struct Entry {
        var spec: MQTTClientSpec
        var transport: MQTTTransport
        var lastBytes: Int = 0
        var rate: Int = 0
        /// The client's throttle, if it is held to a share.
        var throttle: MQTTClientThrottle?
        /// Windows in which it spent its budget, at the last sample.
        var spentWindows = 0
    }

    /// The configuration in force.
    public let configuration: Configuration
    let gateway: any IngestGateway
    let parsers: ParserRegistry?
    let placement: any MQTTClientPlacement
    let logger: Logger
    /// The loop threads of every client.
    public nonisolated let group: MQTTEventLoopGroup
    private var entries: [String: Entry] = [:]
    private var sampler = ProcessSampler()
    private var cpuShare = 0.0
    private var lastSample = MQTTClock.millis()

    /// Creates a manager; its loop threads start at once, clients only when created.
    ///
    /// - Parameters:
    ///   - gateway: where every client's messages go.
    ///   - parsers: the parsers a client's subscriptions name.
    public init(
        configuration: Configuration = Configuration(), gateway: any IngestGateway, parsers: ParserRegistry? = nil,
        placement: any MQTTClientPlacement = LocalPlacement(), logger: Logger = Logger(label: "iot.mqtt")
    ) {
        self.configuration = configuration
        self.gateway = gateway
        self.parsers = parsers
        self.placement = placement
        self.logger = logger
        group = MQTTEventLoopGroup(threads: configuration.threads, name: "mqtt")
    }

    /// A manager whose clients submit to a ``IoTCore/DefaultIngestGateway`` over `ingestor`.
    public init(
        configuration: Configuration = Configuration(), ingestor: Ingestor, parsers: ParserRegistry? = nil,
        placement: any MQTTClientPlacement = LocalPlacement(), logger: Logger = Logger(label: "iot.mqtt")
    ) {
        self.configuration = configuration
        self.gateway = DefaultIngestGateway(ingestor: ingestor)
        self.parsers = parsers
        self.placement = placement
        self.logger = logger
        group = MQTTEventLoopGroup(threads: configuration.threads, name: "mqtt")
    }

    /// Samples load once a second until graceful shutdown, then stops every client (DISCONNECT; brokers
    /// keep the sessions) and the loop threads.
    public func run() async throws {
        let sampling = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 1_000_000_000)
                await self?.sample()
            }
        }
        try? await gracefulShutdown()
        sampling.cancel()
        await stopAll()
    }

    /// Stops and removes every client and stops the loop threads.
    public func stopAll() async {
        let all = entries
        entries.removeAll()
        for (id, entry) in all {
            await entry.transport.stopIngest()
            await placement.release(client: id)
        }
        await group.shutdownGracefully()
    }

    // MARK: - Run-time administration

    /// Creates and starts a client.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid spec,
    ///   ``IoTCore/IoTError/Code/conflict`` when the id exists, a limit is reached, or placement puts the
    ///   client on another instance. Nothing is left behind on failure.
    public func create(_ spec: MQTTClientSpec) async throws(IoTError) -> Report {
        guard entries[spec.id] == nil else {
            throw IoTError(.conflict, "an MQTT client '\(spec.id)' exists; update it (PUT) or remove it first")
        }
        // An invalid spec is a 400 before a full instance is a 409.
        _ = try spec.transportConfiguration(parsers: parsers)
        try checkLimits(adding: 1)
        let transport = try makeTransport(spec)
        let decision: MQTTPlacementDecision
        do {
            decision = try await placement.place(client: spec.id, load: load)
        } catch {
            throw IoTError(.unavailable, "placement of MQTT client '\(spec.id)' failed: \(error); retry")
        }
        guard case .local = decision else {
            if case .elsewhere(let instance) = decision {
                throw IoTError(.conflict, "MQTT client '\(spec.id)' is placed on instance '\(instance)', not here")
            }
            return try report(spec.id)
        }
        guard entries[spec.id] == nil else {
            throw IoTError(.conflict, "an MQTT client '\(spec.id)' exists; update it (PUT) or remove it first")
        }
        entries[spec.id] = Entry(spec: spec, transport: transport)
        transport.startIngest()
        logger.info(
            "MQTT client created",
            metadata: ["client": "\(spec.id)", "broker": "\(spec.broker.host):\(spec.broker.port)"])
        return try report(spec.id)
    }

    /// Replaces a client's spec: the new client is built first (an invalid spec changes nothing), then the
    /// old one disconnects and the new one connects.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound`` for an unknown id, ``IoTCore/IoTError/Code/invalidArgument``.
    public func update(_ spec: MQTTClientSpec) async throws(IoTError) -> Report {
        guard let old = entries[spec.id] else {
            throw IoTError(.notFound, "no MQTT client '\(spec.id)'; create it (POST) first")
        }
        let transport = try makeTransport(spec)
        entries[spec.id] = Entry(spec: spec, transport: transport)
        await old.transport.stopIngest()
        transport.startIngest()
        return try report(spec.id)
    }

    /// Disconnects and removes a client. A client with a persistent session (`cleanSession` off) then
    /// connects once more with a clean session and the same client id, so that the broker drops the session
    /// and stops queueing messages for a client that will not come back (a broker that cannot be reached is
    /// logged; the client is removed all the same).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound`` for an unknown id.
    public func remove(id: String) async throws(IoTError) {
        guard let entry = entries.removeValue(forKey: id) else { throw IoTError(.notFound, "no MQTT client '\(id)'") }
        await entry.transport.stopIngest()
        await placement.release(client: id)
        if !entry.spec.broker.cleanSession { await endBrokerSession(entry.spec) }
    }

    /// One connect with a clean session and the client's id: the broker discards the persistent session.
    private func endBrokerSession(_ spec: MQTTClientSpec) async {
        var broker = spec.broker
        if broker.clientID.isEmpty { broker.clientID = spec.id }
        broker.cleanSession = true
        do {
            let client = try MQTTClient(configuration: broker, group: group, logger: logger)
            client.start()
            do {
                try await client.waitUntilReady(timeoutMillis: 5_000)
            } catch {
                await client.stop()
                throw error
            }
            await client.stop()
            logger.info("MQTT client's broker session ended", metadata: ["client": "\(spec.id)"])
        } catch {
            logger.warning(
                "the broker session of a removed MQTT client could not be ended; the broker keeps queueing for it until its session expires",
                metadata: ["client": "\(spec.id)", "error": "\(error)"])
        }
    }

    /// Stops a client and forgets it here without ending its broker session: the session is kept for the
    /// instance that takes the client over. An unknown id does nothing.
    public func release(id: String) async {
        guard let entry = entries.removeValue(forKey: id) else { return }
        await entry.transport.stopIngest()
        await placement.release(client: id)
    }

    /// Checks a spec as ``MQTTClientAdministration/createClient(_:)`` would (the outbound policy, the
    /// subscriptions and parsers), without starting anything or looking at the limits.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` or ``IoTCore/IoTError/Code/forbidden``.
    public func check(_ spec: MQTTClientSpec) throws(IoTError) {
        try configuration.outbound.check(host: spec.broker.host, what: "MQTT broker")
        _ = try spec.transportConfiguration(parsers: parsers)
    }

    /// Whether a client over the limits would be refused now (``Limits``): placement gives a full instance no
    /// more clients.
    public var isFull: Bool {
        do {
            try checkLimits(adding: 1)
            return false
        } catch {
            return true
        }
    }

    /// Every client, by id.
    public func list() -> [Report] {
        entries.keys.sorted().compactMap { try? report($0) }
    }

    /// One client.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound`` for an unknown id.
    public func report(_ id: String) throws(IoTError) -> Report {
        guard let e = entries[id] else { throw IoTError(.notFound, "no MQTT client '\(id)'") }
        return Report(
            spec: e.spec, status: e.transport.client.status, outcomes: e.transport.outcomes, bytesInPerSecond: e.rate,
            throttle: e.throttle)
    }

    /// The transport of a client (for downlink publishes).
    public func transport(_ id: String) -> MQTTTransport? { entries[id]?.transport }

    /// The instance's load.
    public var load: Load {
        Load(
            clients: entries.count, capacity: capacity,
            memoryBytes: ProcessSampler.residentBytes(),
            cpuShare: cpuShare, inboundBytesPerSecond: entries.values.reduce(0) { $0 + $1.rate },
            threads: group.threadCount)
    }

    // MARK: - Internals

    private func makeTransport(_ spec: MQTTClientSpec) throws(IoTError) -> MQTTTransport {
        let configuration = try spec.transportConfiguration(parsers: parsers)
        return try MQTTTransport(configuration: configuration, gateway: gateway, group: group, logger: logger)
    }

    private func checkLimits(adding: Int) throws(IoTError) {
        let limits = configuration.limits
        if let max = limits.maxClients, entries.count + adding > max {
            throw IoTError(
                .conflict,
                "this instance runs \(entries.count) MQTT clients and its limit is \(max) (mqtt.limits.maxClients); remove a client or raise the limit"
            )
        }
        if let perThread = limits.maxClientsPerThread, entries.count + adding > perThread * group.threadCount {
            throw IoTError(
                .conflict,
                "this instance runs \(entries.count) MQTT clients on \(group.threadCount) loop threads and its limit is \(perThread) per thread (mqtt.limits.maxClientsPerThread); add threads (mqtt.threads) or place the client on another instance"
            )
        }
        if let max = limits.maxMemoryBytes {
            let rss = ProcessSampler.residentBytes()
            if rss >= max {
                throw IoTError(
                    .conflict,
                    "this instance uses \(rss / 1_048_576) MiB of memory, at or over its limit of \(max / 1_048_576) MiB (mqtt.limits.maxMemoryBytes); place the client on another instance"
                )
            }
        }
        if let max = limits.maxCPUShare, cpuShare >= max {
            throw IoTError(
                .conflict,
                "this instance uses \(Int(cpuShare * 100)) % of the CPU, at or over its limit of \(Int(max * 100)) % (mqtt.limits.maxCPUShare); place the client on another instance"
            )
        }
        if let max = limits.maxInboundBytesPerSecond {
            let rate = entries.values.reduce(0) { $0 + $1.rate }
            if rate >= max {
                throw IoTError(
                    .conflict,
                    "the MQTT clients of this instance receive \(rate) B/s, at or over the limit of \(max) B/s (mqtt.limits.maxInboundBytesPerSecond); place the client on another instance"
                )
            }
        }
    }

    /// The clients this instance may run: ``Limits/maxClients``, or fewer by ``Limits/maxClientsPerThread``.
    var capacity: Int? {
        let perThread = configuration.limits.maxClientsPerThread.map { $0 * group.threadCount }
        switch (configuration.limits.maxClients, perThread) {
        case (let a?, let b?): return min(a, b)
        case (let a, let b): return a ?? b
        }
    }

    /// Updates CPU share and per-client inbound rates, then throttles or releases clients (once a second from
    /// ``run()``; tests may call it).
    func sample() {
        let now = MQTTClock.millis()
        let elapsed = max(1, now - lastSample)
        lastSample = now
        cpuShare = sampler.cpuShare()
        for (id, var e) in entries {
            let bytes = e.transport.client.status.bytesIn
            e.rate = Int(Int64(bytes - e.lastBytes) * 1000 / elapsed)
            e.lastBytes = bytes
            entries[id] = e
        }
        enforceLimits(residentBytes: ProcessSampler.residentBytes())
    }

    /// The least a throttled client may read per second.
    static let minimumBudget = 1_024

    /// Holds the clients over their share of a limit the instance exceeds to that share, and lets them go once
    /// they no longer need it.
    ///
    /// - A limit on inbound bytes: a client receiving more than the limit over the number of clients reads at
    ///   most that share while it keeps spending it, and is released in the first second it does not.
    /// - CPU share and memory: a client receiving more than the clients' mean reads at most the mean; while the
    ///   instance stays over the limit and the client spends its budget, the budget halves each second; once the
    ///   instance is under the limit, it grows by half each second the client spends it, and the client is
    ///   released in the first second it does not.
    func enforceLimits(residentBytes: Int) {
        guard !entries.isEmpty else { return }
        let limits = configuration.limits
        let total = entries.values.reduce(0) { $0 + $1.rate }
        var over: Set<MQTTClientThrottle.Reason> = []
        if let max = limits.maxInboundBytesPerSecond, total > max { over.insert(.bandwidth) }
        if let max = limits.maxCPUShare, cpuShare > max { over.insert(.cpu) }
        if let max = limits.maxMemoryBytes, residentBytes > max { over.insert(.memory) }
        func share(_ reason: MQTTClientThrottle.Reason) -> Int {
            let n = entries.count
            switch reason {
            case .bandwidth: return Swift.max(Self.minimumBudget, (limits.maxInboundBytesPerSecond ?? 0) / n)
            case .cpu, .memory: return Swift.max(Self.minimumBudget, total / n)
            }
        }
        let reasons: [MQTTClientThrottle.Reason] = [.bandwidth, .cpu, .memory].filter(over.contains)
        for (id, var e) in entries {
            let client = e.transport.client
            let spentNow = client.budgetWindowsSpentCount
            let spent = spentNow > e.spentWindows
            if spent, let reason = e.throttle?.reason {
                Counter(
                    label: "iot_mqtt_client_throttled_total", dimensions: [("client", id), ("reason", reason.rawValue)]
                )
                .increment(by: spentNow - e.spentWindows)
            }
            e.spentWindows = spentNow
            if var throttle = e.throttle {
                switch (throttle.reason, over.contains(throttle.reason), spent) {
                case (_, _, false):
                    e.throttle = nil
                case (.bandwidth, _, true):
                    throttle.bytesPerSecond = share(.bandwidth)
                    e.throttle = throttle
                case (_, true, true):
                    throttle.bytesPerSecond = Swift.max(Self.minimumBudget, throttle.bytesPerSecond / 2)
                    e.throttle = throttle
                case (_, false, true):
                    throttle.bytesPerSecond += throttle.bytesPerSecond / 2
                    e.throttle = throttle
                }
                if e.throttle == nil {
                    logger.info("MQTT client no longer throttled", metadata: ["client": "\(id)"])
                }
            } else if let reason = reasons.first, e.rate > 0, e.rate >= share(reason) {
                e.throttle = MQTTClientThrottle(reason: reason, bytesPerSecond: share(reason))
                logger.warning(
                    "MQTT client throttled: over its share of an instance limit",
                    metadata: [
                        "client": "\(id)", "reason": "\(reason.rawValue)", "bytes_per_second": "\(e.rate)",
                        "budget": "\(share(reason))",
                    ])
            }
            client.inboundBudget = e.throttle?.bytesPerSecond
            entries[id] = e
        }
        Gauge(label: "iot_mqtt_clients_throttled").record(entries.values.filter { $0.throttle != nil }.count)
    }
}

/// Where an MQTT client runs.
public enum MQTTPlacementDecision: Sendable, Hashable {
    /// On this instance.
    case local
    /// On another instance (named); this one does not run it.
    case elsewhere(String)
}

/// Decides which instance runs an MQTT client. The default, ``LocalPlacement``, runs every client on the
/// instance that was asked; a placement shared by several instances (Redis: used/capacity per instance,
/// heartbeats, a fencing epoch per assignment) plugs in here.
public protocol MQTTClientPlacement: Sendable {
    /// Where `client` should run, given this instance's load.
    func place(client: String, load: MQTTClientManager.Load) async throws -> MQTTPlacementDecision
    /// The client was removed from this instance.
    func release(client: String) async
}

/// Runs every client on this instance.
public struct LocalPlacement: MQTTClientPlacement {
    /// Creates the placement.
    public init() {}
    /// Always ``MQTTPlacementDecision/local``.
    public func place(client: String, load: MQTTClientManager.Load) async throws -> MQTTPlacementDecision { .local }
    /// Nothing to release.
    public func release(client: String) async {}
}

/// Reads the process's CPU time and resident memory from `/proc/self`.
struct ProcessSampler {
    var lastCPU: Int64 = ProcessSampler.cpuTicks()
    var lastWall: Int64 = MQTTClock.millis()

    static func residentBytes() -> Int {
        guard let text = read("/proc/self/statm") else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func cpuTicks() -> Int64 {
        guard let text = read("/proc/self/stat"), let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state(0) … utime(11) stime(12).
        guard fields.count > 12, let u = Int64(fields[11]), let s = Int64(fields[12]) else { return 0 }
        return u + s
    }

    mutating func cpuShare() -> Double {
        let cpu = Self.cpuTicks()
        let wall = MQTTClock.millis()
        defer {
            lastCPU = cpu
            lastWall = wall
        }
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let cores = Double(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let seconds = Double(max(1, wall - lastWall)) / 1000
        return Double(cpu - lastCPU) / ticksPerSecond / seconds / cores
    }

    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }
}

extension MQTTClientManager.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case threads, limits }

    /// Reads `threads` and `limits` (`mqtt:` in iotd.yaml, beside its `clients`); the outbound policy is not
    /// read here (iotd's top-level `outbound:`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(threads: try c.decode(.threads, or: d.threads), limits: try c.decode(.limits, or: d.limits))
    }
}
