public import IoTCore
import IoTIO
public import Logging
import ServiceLifecycle
import Synchronization

/// The Modbus poller: reads Modbus TCP and RTU devices on their schedules and hands their register maps,
/// decoded into signals, to the ``IoTCore/Ingestor``; writes registers and coils on request (downlink).
///
/// Each device gets a ``ModbusPoller`` (a ``IoTCore/PollingTransport``): its own interval, a random start
/// offset within the interval so devices are not polled at once, a per-request timeout (sub-second is
/// fine), and exponential backoff while it does not answer, so an offline device costs one attempt per
/// backoff step instead of a pile of requests. libmodbus calls block; they run on
/// ``Configuration/ioThreads`` dedicated threads (never on Swift's cooperative pool), and each thread runs
/// the poll schedule of its devices itself: wait for the next due device, read, decode, hand the record
/// to the ingest task, next device — no hop between the thread and the pool per poll. A TCP device has
/// its own connection; RTU devices on the same serial line share it (and its thread) and are polled one
/// after the other.
/// Modbus ASCII framing is not supported: libmodbus implements only RTU and TCP.
///
/// ```swift
/// let modbus = ModbusTransport(devices: [meter], ingestor: ingestor, logger: logger)
/// let group = ServiceGroup(services: [ingestor, modbus], gracefulShutdownSignals: [.sigterm], logger: logger)
/// // later, downlink:
/// try await modbus.write(meter.identity, signal: "setpoint", value: .number(21.5))
/// ```
public final class ModbusTransport: Transport {
    /// Threads and limits.
    public struct Configuration: Sendable {
        /// Dedicated threads for libmodbus calls. Default 4. Devices are spread over them; a device that
        /// times out holds its thread for the timeout, so give more threads when many devices may be
        /// offline at once.
        public var ioThreads: Int
        /// Devices at most. Default 10 000.
        public var maxDevices: Int
        /// Polled records waiting for the ingestor at most. Default 10 000. A record polled while the
        /// ingestor is this far behind is dropped and counted as rejected (`backpressure`).
        public var ingestBacklog: Int
        /// File descriptor numbers below 1024 set aside for Modbus connections added later, beyond the one
        /// the transport sets aside for each TCP device and serial line it is created with. Default 8.
        ///
        /// libmodbus waits with `select()`, which cannot take a descriptor of 1024 or more, so in a process
        /// with thousands of other connections a Modbus connection needs a number set aside early. The
        /// numbers are taken when the transport is created (placeholders on `/dev/null`), at most 512 for
        /// the whole process; a connection that finds none left and no free low number is refused with
        /// ``IoTCore/IoTError/Code/unavailable``. Raise this when devices are added at run time in such a
        /// process.
        public var reservedDescriptors: Int

        /// Creates a configuration with the documented defaults.
        public init(
            ioThreads: Int = 4, maxDevices: Int = 10_000, ingestBacklog: Int = 10_000, reservedDescriptors: Int = 8
        ) {
            self.ioThreads = ioThreads
            self.maxDevices = maxDevices
            self.ingestBacklog = ingestBacklog
            self.reservedDescriptors = reservedDescriptors
        }

        /// Checks `ioThreads` (1 to 256), `reservedDescriptors` (0 to 512) and `maxDevices`.
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            try IoTLimits.checkSetting(ioThreads, "ioThreads", in: 1...256)
            try IoTLimits.checkSetting(reservedDescriptors, "reservedDescriptors", in: 0...512)
            try IoTLimits.checkSetting(maxDevices, "maxDevices", in: 1...1_000_000)
        }
    }

    /// A device and what its poller has done (``IoTCore/ModbusDeviceStatus``).
    public typealias DeviceStatus = ModbusDeviceStatus

    private final class Entry: Sendable {
        let scheduled: ModbusIOThread.Scheduled
        let writes = Mutex((ok: 0, failed: 0))
        var poller: ModbusPoller { scheduled.poller }
        init(_ scheduled: ModbusIOThread.Scheduled) { self.scheduled = scheduled }
    }

    private struct State {
        var entries: [DeviceIdentity: Entry] = [:]
        var order: [DeviceIdentity] = []
        var rtuLines: [String: (ModbusConnection, ModbusIOThread)] = [:]
        var nextWorker = 0
        var running = false
        var stopped = false
    }

    /// The configuration in force.
    public let configuration: Configuration
    let gateway: any IngestGateway
    let clock: any IoTClock
    let logger: Logger
    private let workers: [ModbusIOThread]
    private let state = Mutex(State())
    private let handOff: ModbusHandOff

    /// `"modbus"`: the transport label of records and counters.
    public var name: String { "modbus" }

    /// A transport that submits to a ``IoTCore/DefaultIngestGateway`` over `ingestor`.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid device or a duplicate identity.
    public convenience init(
        configuration: Configuration = .init(), devices: [ModbusDevice] = [], ingestor: Ingestor,
        clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.modbus")
    ) throws(IoTError) {
        try self.init(
            configuration: configuration, devices: devices, gateway: DefaultIngestGateway(ingestor: ingestor),
            clock: clock, logger: logger)
    }

    /// Creates the transport with its devices; polling starts in ``run()``.
    ///
    /// - Parameter gateway: where polled records go, as their device's.
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid device or a duplicate identity.
    public init(
        configuration: Configuration = .init(), devices: [ModbusDevice] = [], gateway: any IngestGateway,
        clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.modbus")
    ) throws(IoTError) {
        self.configuration = configuration
        self.gateway = gateway
        self.clock = clock
        self.logger = logger
        let handOff = ModbusHandOff(limit: max(1, configuration.ingestBacklog), gateway: gateway, logger: logger)
        self.handOff = handOff
        self.workers = (0..<max(1, configuration.ioThreads)).map {
            ModbusIOThread(name: "iot-modbus-\($0)", clock: clock) { batch in handOff.deliver(batch) }
        }
        for device in devices { try add(device) }
        let wanted = Self.descriptorsNeeded(configuration: configuration, devices: devices)
        let reserved = ModbusDescriptorReserve.shared.reserve(wanted)
        if reserved < min(wanted, ModbusDescriptorReserve.limit) {
            logger.warning(
                "fewer file descriptors below 1024 set aside for Modbus connections than wanted; create the Modbus transport earlier, before other connections are opened",
                metadata: ["reserved": "\(reserved)", "wanted": "\(wanted)"])
        }
    }

    /// Sets aside descriptor numbers below 1024 for the Modbus connections of `devices` (one per TCP
    /// device and per serial line) plus ``Configuration/reservedDescriptors``, in the process-wide
    /// ``ModbusDescriptorReserve``, and returns how many it holds. The transport does this when it is
    /// created; `iotd` calls it first thing, before anything else opens descriptors.
    @discardableResult
    package static func reserveDescriptors(configuration: Configuration, devices: [ModbusDevice]) -> Int {
        ModbusDescriptorReserve.shared.reserve(descriptorsNeeded(configuration: configuration, devices: devices))
    }

    private static func descriptorsNeeded(configuration: Configuration, devices: [ModbusDevice]) -> Int {
        var lines = Set<String>()
        var tcp = 0
        for device in devices {
            switch device.connection {
            case .tcp: tcp += 1
            case .rtu(let path, _, _, _): lines.insert(path)
            }
        }
        return tcp + lines.count + max(0, configuration.reservedDescriptors)
    }

    deinit {
        for w in workers { w.stop() }
    }

    /// Adds a device; it is polled at once if the transport runs.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` (invalid configuration),
    ///   ``IoTCore/IoTError/Code/conflict`` (the identity is already polled), or
    ///   ``IoTCore/IoTError/Code/unavailable`` (over ``Configuration/maxDevices``).
    public func add(_ device: ModbusDevice) throws(IoTError) {
        try device.validate()
        let entry = try state.withLock { s throws(IoTError) -> (Entry, Bool) in
            guard s.entries[device.identity] == nil else {
                throw IoTError(
                    .conflict, "Modbus device \(device.identity) is already polled; remove it first to change it")
            }
            guard s.entries.count < configuration.maxDevices else {
                throw IoTError(
                    .unavailable,
                    "the Modbus transport polls \(configuration.maxDevices) devices, its limit; raise maxDevices")
            }
            let connection: ModbusConnection
            let worker: ModbusIOThread
            if case .rtu(let path, _, _, _) = device.connection {
                if let line = s.rtuLines[path] {
                    guard line.0.connection == device.connection else {
                        throw IoTError(
                            .invalidArgument,
                            "serial line \(path) is already open with other settings (\(line.0.endpoint)); every device on a line shares baud, parity and stop bits"
                        )
                    }
                    (connection, worker) = line
                } else {
                    connection = ModbusConnection(device.connection)
                    worker = workers[s.nextWorker % workers.count]
                    s.nextWorker += 1
                    s.rtuLines[path] = (connection, worker)
                }
            } else {
                connection = ModbusConnection(device.connection)
                worker = workers[s.nextWorker % workers.count]
                s.nextWorker += 1
            }
            var logger = self.logger
            logger[metadataKey: "endpoint"] = "\(connection.endpoint)"
            let poller = ModbusPoller(
                device: device, connection: connection, thread: worker, gateway: gateway, clock: clock, logger: logger
            )
            let entry = Entry(ModbusIOThread.Scheduled(poller))
            s.entries[device.identity] = entry
            s.order.append(device.identity)
            return (entry, s.running)
        }
        if entry.1 { start(entry.0) }
    }

    /// Stops polling a device and closes its connection (a shared serial line stays open for the others).
    /// Returns whether it was polled.
    @discardableResult
    public func remove(_ identity: DeviceIdentity) async -> Bool {
        guard
            let entry = state.withLock({ s -> Entry? in
                guard let e = s.entries.removeValue(forKey: identity) else { return nil }
                s.order.removeAll { $0 == identity }
                return e
            })
        else { return false }
        entry.poller.thread.unschedule(entry.scheduled)
        if case .tcp = entry.poller.device.connection {
            // Runs after a poll of the device that may be running.
            let connection = entry.poller.connection
            _ = await entry.poller.thread.run { () -> Result<Void, IoTError> in
                connection.close()
                return .success(())
            }
        }
        return true
    }

    /// Polls `device` with a new configuration (connection, unit, interval, register map), or adds it
    /// when it is not polled; its counters start afresh. Returns whether it was polled before.
    ///
    /// - Throws: what ``add(_:)`` throws; the device keeps its old configuration then.
    @discardableResult
    public func replace(_ device: ModbusDevice) async throws(IoTError) -> Bool {
        try device.validate()
        let old = state.withLock { $0.entries[device.identity]?.poller.device }
        if old != nil { await remove(device.identity) }
        do throws(IoTError) {
            try add(device)
        } catch {
            if let old { try? add(old) }
            throw error
        }
        return old != nil
    }

    /// Every device with its poller's status, in the order they were added.
    public func devices() -> [DeviceStatus] {
        let entries = state.withLock { s in s.order.compactMap { s.entries[$0] } }
        return entries.map(Self.status)
    }

    /// One device's status, or `nil` when it is not polled.
    public func device(_ identity: DeviceIdentity) -> DeviceStatus? {
        state.withLock { $0.entries[identity] }.map(Self.status)
    }

    private static func status(_ e: Entry) -> DeviceStatus {
        let w = e.writes.withLock { $0 }
        return DeviceStatus(
            device: e.poller.device, polling: e.poller.status, requestsPerPoll: e.poller.plan.requests.count,
            writes: w.ok,
            writeFailures: w.failed)
    }

    /// Polls every device until graceful shutdown or cancellation; then stops the pollers and the I/O
    /// threads and returns.
    public func run() async throws {
        let entries = state.withLock { s -> [Entry] in
            s.running = true
            return s.order.compactMap { s.entries[$0] }
        }
        logger.info("Modbus polling", metadata: ["devices": "\(entries.count)", "io_threads": "\(workers.count)"])
        let handOff = self.handOff
        let ingest = Task { await handOff.ingest() }
        for e in entries { start(e) }
        let (stop, stopper) = AsyncStream<Void>.makeStream()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                for await _ in stop {}
            } onCancel: {
                stopper.finish()
            }
        } onGracefulShutdown: {
            stopper.finish()
        }
        let (remaining, lines) = state.withLock { s in
            s.running = false
            s.stopped = true
            return (Array(s.entries.values), Array(s.rtuLines.values))
        }
        for e in remaining { e.poller.thread.unschedule(e.scheduled) }
        await close(remaining.map { ($0.poller.connection, $0.poller.thread) } + lines)
        for w in workers { w.stop() }
        handOff.finish()
        await ingest.value  // the records already polled
        logger.info("Modbus polling stopped")
    }

    /// Closes `connections` on their threads (after a poll that runs), so that their descriptors are
    /// placeholders again when ``run()`` returns; a serial line shared by several devices is closed once.
    private func close(_ connections: [(ModbusConnection, ModbusIOThread)]) async {
        var seen = Set<ObjectIdentifier>()
        for (connection, thread) in connections where seen.insert(ObjectIdentifier(connection)).inserted {
            _ = await thread.run { () -> Result<Void, IoTError> in
                connection.close()
                return .success(())
            }
        }
    }

    private func start(_ entry: Entry) {
        entry.poller.thread.schedule(entry.scheduled, at: entry.poller.firstPollTime())
    }

    /// Reads a device's register map now, outside its schedule, and returns the decoded record without
    /// ingesting it (a read-on-demand; the benchmark's read loop).
    ///
    /// - Throws: ``IoTCore/IoTError``: `notFound`, or what ``ModbusPoller/poll()`` throws.
    public func readNow(_ identity: DeviceIdentity) async throws(IoTError) -> DeviceRecord {
        let poller = try entry(identity).poller
        do {
            return try await poller.poll()[0]
        } catch let error as IoTError {
            throw error
        } catch {
            throw IoTError(.unavailable, "reading \(identity) failed: \(error)")
        }
    }

    // MARK: Downlink

    /// Writes `value` to the register map entry of `signal`, encoded with its type, byte order, scale
    /// and offset, and returns once the device confirmed the write.
    ///
    /// - Throws: ``IoTCore/IoTError``: `notFound` (unknown device or signal), `invalidArgument` (the
    ///   entry is an input register or discrete input, or a bit of a register), `invalidValue` (the value
    ///   does not fit), `unavailable` / `timeout` (the device did not confirm).
    public func write(_ identity: DeviceIdentity, signal: String, value: SignalValue) async throws(IoTError) {
        let entry = try self.entry(identity)
        guard let register = entry.poller.device.registers.first(where: { $0.signal == signal }) else {
            throw IoTError(.notFound, "Modbus device \(identity) has no register mapped to signal '\(signal)'")
        }
        guard register.area.isWritable else {
            throw IoTError(
                .invalidArgument,
                "signal '\(signal)' is in the \(register.area.rawValue) table, which is read-only; only holding registers and coils can be written"
            )
        }
        let words = try ModbusCodec.encode(value, for: register)
        try await perform(entry) { () async throws(IoTError) in
            try await entry.poller.write(register.area, address: register.address, words: words)
        }
    }

    /// Writes raw values: 16-bit words to holding registers from `address` on, or 0/1 to coils.
    ///
    /// - Throws: ``IoTCore/IoTError``: `notFound`, `invalidArgument` (a read-only table, no values,
    ///   more than 123 registers or 1 968 coils, or an address past 65535), `unavailable` / `timeout`.
    public func write(_ identity: DeviceIdentity, area: ModbusArea, address: Int, values: [UInt16])
        async throws(IoTError)
    {
        let entry = try self.entry(identity)
        guard area.isWritable else {
            throw IoTError(
                .invalidArgument, "the \(area.rawValue) table is read-only; write holding registers or coils")
        }
        let limit = area == .coil ? 1_968 : 123
        guard !values.isEmpty, values.count <= limit else {
            throw IoTError(
                .invalidArgument, "write 1–\(limit) \(area.rawValue) values per request, not \(values.count)")
        }
        guard address >= 0, address + values.count <= 65_536 else {
            throw IoTError(.invalidArgument, "address \(address) (+\(values.count)) is outside 0–65535")
        }
        if area == .coil, values.contains(where: { $0 > 1 }) {
            throw IoTError(.invalidArgument, "coil values are 0 or 1")
        }
        try await perform(entry) { () async throws(IoTError) in
            try await entry.poller.write(area, address: address, words: values)
        }
    }

    private func entry(_ identity: DeviceIdentity) throws(IoTError) -> Entry {
        guard let e = state.withLock({ $0.entries[identity] }) else {
            throw IoTError(.notFound, "no Modbus device \(identity) is polled; add it to the Modbus transport first")
        }
        return e
    }

    private func perform(_ entry: Entry, _ body: () async throws(IoTError) -> Void) async throws(IoTError) {
        do throws(IoTError) {
            try await body()
            entry.writes.withLock { $0.ok += 1 }
        } catch {
            entry.writes.withLock { $0.failed += 1 }
            logger.warning(
                "Modbus write failed", metadata: ["device": "\(entry.poller.identity)", "error": "\(error)"])
            throw error
        }
    }
}

/// Carries polls from the I/O threads to one ingest task, which decodes their register words into
/// records and submits them to the gateway: a batch per hand-off (one journal write once its devices are
/// cached, on a thread of its own, as ``IoTCore/IngestGateway/submitBlocking(_:onCacheMiss:)`` wants), so
/// an I/O thread never waits and wakes the task at most once per batch. At most `limit` polls wait; a batch
/// that does not fit is dropped and each of its polls counted as a rejected record (`backpressure`).
final class ModbusHandOff: Sendable {
    private let stream: AsyncStream<ModbusPolledBatch>
    private let input: AsyncStream<ModbusPolledBatch>.Continuation
    private let waiting = Atomic<Int>(0)
    private let warned = Atomic<Bool>(false)
    private let limit: Int
    private let gateway: any IngestGateway
    /// The thread batches are submitted from.
    private let submitter = BlockingThreadPool(name: "iot-modbus-ingest", maxThreads: 1)
    private let logger: Logger

    init(limit: Int, gateway: any IngestGateway, logger: Logger) {
        let pair = AsyncStream.makeStream(of: ModbusPolledBatch.self)
        stream = pair.stream
        input = pair.continuation
        self.limit = limit
        self.gateway = gateway
        self.logger = logger
    }

    /// On an I/O thread: queues a batch; never waits.
    func deliver(_ batch: ModbusPolledBatch) {
        let count = batch.polls.count
        let now = waiting.add(count, ordering: .relaxed).newValue
        if now <= limit {
            if case .enqueued = input.yield(batch) {
                warned.store(false, ordering: .relaxed)
                return
            }
            waiting.subtract(count, ordering: .relaxed)
            return  // finished: the transport stopped
        }
        waiting.subtract(count, ordering: .relaxed)
        let error = IoTError(
            .backpressure,
            "\(limit) polled Modbus records are waiting for the ingestor; poll less often or raise ingestBacklog")
        _ = gateway.submitBlocking(
            Array(repeating: .refused(error, transport: "modbus"), count: count), onCacheMiss: .deferToAsync)
        if !warned.exchange(true, ordering: .relaxed) {
            logger.warning("polled records dropped", metadata: ["records": "\(count)", "error": "\(error)"])
        }
    }

    /// Ends ``ingest()`` once the queued batches are ingested.
    func finish() { input.finish() }

    /// Decodes each batch and submits its records, until ``finish()``.
    func ingest() async {
        for await batch in stream {
            var submissions: [IngestSubmission] = []
            submissions.reserveCapacity(batch.polls.count)
            for (poller, start) in batch.polls {
                do throws(IoTError) {
                    submissions.append(
                        .records(
                            [try poller.decode(batch.words, from: start)], transport: "modbus", from: poller.identity))
                } catch {
                    // Not reached: the I/O thread checked the values that can fail to decode.
                    submissions.append(.refused(error, transport: "modbus", from: .device(poller.identity)))
                    logger.warning(
                        "polled registers not decoded", metadata: ["device": "\(poller.identity)", "error": "\(error)"])
                }
            }
            let gateway = self.gateway
            let outcomes = await submitter.run { [submissions] in
                gateway.submitBlocking(submissions, onCacheMiss: .wait)
            }
            for (submission, outcome) in zip(submissions, outcomes) {
                if case .refused(let error) = outcome, case .records = submission.content,
                    case .device(let device) = submission.sender
                {
                    logger.warning("poll result not accepted", metadata: ["device": "\(device)", "error": "\(error)"])
                }
            }
            waiting.subtract(batch.polls.count, ordering: .relaxed)
        }
    }
}

extension ModbusTransport.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case ioThreads, maxDevices, ingestBacklog, reservedDescriptors }

    /// Reads the poller's settings (`modbus:` in iotd.yaml, beside its `devices`); a missing key keeps its
    /// default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            ioThreads: try c.decode(.ioThreads, or: d.ioThreads),
            maxDevices: try c.decode(.maxDevices, or: d.maxDevices),
            ingestBacklog: try c.decode(.ingestBacklog, or: d.ingestBacklog),
            reservedDescriptors: try c.decode(.reservedDescriptors, or: d.reservedDescriptors))
    }
}
