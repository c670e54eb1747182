public import Logging
import ServiceLifecycle
import Synchronization

/// An open base class for devices that are asked for data on a schedule: Modbus registers, an HTTP
/// endpoint on a PLC, a file in `/sys`.
///
/// Override ``poll()``; the base class owns the schedule (fixed rate, no drift, missed ticks skipped
/// rather than piled up), a timeout per poll, exponential backoff while the device fails, and submitting
/// the records to the ``IngestGateway`` as the device's.
///
/// ```swift
/// final class LoadAverage: PollingTransport, @unchecked Sendable {
///     override func poll() async throws -> [DeviceRecord] {
///         let text = try String(contentsOfFile: "/proc/loadavg", encoding: .utf8)
///         let load = Double(text.split(separator: " ")[0])!
///         return [DeviceRecord(deviceUID: identity.deviceUID, values: ["load1": .number(load)])]
///     }
/// }
/// let poller = LoadAverage(name: "loadavg", identity: device, ingestor: ingestor)
/// ```
///
/// ## Subclassing
/// - Keep your own state `Sendable` (the base class is `@unchecked Sendable`: its own stored properties
///   are immutable or behind a lock; yours must be too).
/// - Honour task cancellation in ``poll()``; a blocking C call must run on its own thread and have its
///   own timeout shorter than ``Configuration/timeout``.
/// - Throw to report a failed poll (the device is offline, a read failed); the base class backs off.
open class PollingTransport: Transport, @unchecked Sendable {
    /// Schedule, timeout and backoff.
    public struct Configuration: Sendable {
        /// Time between polls. Default 1 000 ms. 0 polls again as soon as a poll ends (as fast as the
        /// device answers).
        public var interval: Duration
        /// A poll taking longer fails with ``IoTError/Code/timeout``. Default 500 ms.
        public var timeout: Duration
        /// First delay after a failure; it doubles with each failure. Default 1 000 ms.
        public var backoffInitial: Duration
        /// Longest delay after failures. Default 60 000 ms.
        public var backoffMax: Duration
        /// Delay before the first poll, so many devices are not polled at the same instant.
        /// `nil` (default) picks one at random within one interval.
        public var startDelay: Duration?
        /// How long a poll's records that the ingestor refuses with ``IoTError/Code/backpressure`` (it is
        /// starting, or the store is behind: nothing was accepted) are offered again, waiting the delay
        /// it suggests between tries; the next poll waits meanwhile. Past it they are dropped (and logged).
        /// Default 30 000 ms; 0 drops them at once.
        public var backpressureRetryLimit: Duration

        /// Creates a configuration with the documented defaults.
        public init(
            interval: Duration = .seconds(1), timeout: Duration = .milliseconds(500),
            backoffInitial: Duration = .seconds(1),
            backoffMax: Duration = .seconds(60), startDelay: Duration? = nil,
            backpressureRetryLimit: Duration = .seconds(30)
        ) {
            self.interval = interval
            self.timeout = timeout
            self.backoffInitial = backoffInitial
            self.backoffMax = backoffMax
            self.startDelay = startDelay
            self.backpressureRetryLimit = backpressureRetryLimit
        }

        /// Checks the documented ranges: interval 0 to 10 years, timeout 1 ms to an hour, backoff 1 ms to
        /// 10 years, start delay 0 to 10 years.
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the field and its range.
        public func validate() throws(IoTError) {
            try IoTLimits.checkDuration(interval, "intervalMillis", minimum: .zero)
            try IoTLimits.checkMillis(timeout.inMilliseconds, "timeoutMillis", in: 1...3_600_000)
            try IoTLimits.checkDuration(backoffInitial, "backoffInitialMillis")
            try IoTLimits.checkDuration(backoffMax, "backoffMaxMillis")
            if let startDelay { try IoTLimits.checkDuration(startDelay, "startDelayMillis", minimum: .zero) }
            try IoTLimits.checkDuration(backpressureRetryLimit, "backpressureRetryMillis", minimum: .zero)
        }
    }

    /// What the poller has done so far.
    public struct Status: Sendable, Hashable, Codable {
        /// Polls that returned records (or none) in time.
        public var successes = 0
        /// Polls that threw or timed out.
        public var failures = 0
        /// Failures since the last success; 0 when the device answers.
        public var consecutiveFailures = 0
        /// The description of the failure that broke the last run of successes; `nil` while the device
        /// answers (a success clears it).
        public var lastError: String?
        /// When the last successful poll ended (UTC ms).
        public var lastSuccessAt: Int64?

        /// A status before any poll.
        public init() {}
    }

    /// The transport's name (counters, logs).
    public let name: String
    /// The device this poller reads.
    public let identity: DeviceIdentity
    /// Schedule, timeout, backoff.
    public let configuration: Configuration
    /// Where records go.
    public let gateway: any IngestGateway
    /// The clock that drives the schedule.
    public let clock: any IoTClock
    /// The logger, with the device in its metadata.
    public let logger: Logger
    private let state = Mutex(Status())

    /// Creates a poller for one device.
    public init(
        name: String, identity: DeviceIdentity, configuration: Configuration = Configuration(),
        gateway: any IngestGateway, clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.poller")
    ) {
        self.name = name
        self.identity = identity
        self.configuration = configuration
        self.gateway = gateway
        self.clock = clock
        var logger = logger
        logger[metadataKey: "device"] = "\(identity)"
        self.logger = logger
    }

    /// Creates a poller for one device that submits to a ``DefaultIngestGateway`` over `ingestor` (its
    /// records are the device's own: no credential to check).
    public init(
        name: String, identity: DeviceIdentity, configuration: Configuration = Configuration(), ingestor: Ingestor,
        clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.poller")
    ) {
        self.name = name
        self.identity = identity
        self.configuration = configuration
        self.gateway = DefaultIngestGateway(ingestor: ingestor)
        self.clock = clock
        var logger = logger
        logger[metadataKey: "device"] = "\(identity)"
        self.logger = logger
    }

    /// Reads the device once. Override it; the default throws.
    open func poll() async throws -> [DeviceRecord] {
        throw IoTError(.invalidArgument, "\(type(of: self)) must override poll()")
    }

    /// A snapshot of the poller's counters.
    public var status: Status { state.withLock { $0 } }

    /// Polls on schedule until cancelled or until a graceful shutdown (SIGTERM to a `ServiceGroup`), which
    /// stops the schedule (a poll under way is cancelled; what earlier polls handed the ingestor is kept).
    /// A subclass that drives the schedule itself (see ``firstPollTime()``) overrides it.
    open func run() async throws {
        try await cancelWhenGracefulShutdown { [self] in try await pollOnSchedule() }
    }

    /// ``run()``'s loop: sleep until due, poll, schedule the next, until cancelled.
    private func pollOnSchedule() async throws {
        var next = firstPollTime()
        while !Task.isCancelled {
            do { try await clock.sleep(until: next) } catch { return }
            if let failure = await pollOnce(), !(failure is CancellationError) {
                next = recordFailure(failure)
            } else {
                next = nextPollTime(after: next)
            }
        }
    }

    // MARK: Driving the schedule from a thread of its own

    /// When the first poll is due (clock ms): now plus ``Configuration/startDelay`` (or a random
    /// delay within one interval).
    ///
    /// ``run()`` uses it; so does a subclass whose polls are blocking C calls and that runs the schedule
    /// of many devices on a thread of its own (a loop: wait until the next device is due, call its
    /// blocking read, then ``recordSuccess(due:)`` or ``recordFailure(_:)``), which avoids two thread
    /// hops per poll.
    public final func firstPollTime() -> Int64 {
        let interval = max(1, configuration.interval.inMilliseconds)
        return clock.now().saturatingAdd(configuration.startDelay?.inMilliseconds ?? Int64.random(in: 0..<interval))
    }

    /// Counts a successful poll that was due at `due` (clock ms) and returns when the next one is due:
    /// the fixed-rate schedule of ``run()`` (no drift, missed ticks skipped). With an interval of 0 the
    /// next poll is due at once. The caller hands the records to the ingestor itself.
    public final func recordSuccess(due: Int64) -> Int64 {
        let now = clock.now()
        state.withLock { s in
            s.successes += 1
            s.consecutiveFailures = 0
            s.lastError = nil
            s.lastSuccessAt = now
        }
        return nextPollTime(after: due, now: now)
    }

    /// Counts a failed poll, logs the first failure of a series, and returns when the next attempt is
    /// due (clock ms): the exponential backoff of ``run()``.
    public final func recordFailure(_ error: any Error) -> Int64 {
        let n = state.withLock { s -> Int in
            s.failures += 1
            s.consecutiveFailures += 1
            s.lastError = "\(error)"
            return s.consecutiveFailures
        }
        if n == 1 { logger.warning("poll failed; backing off", metadata: ["error": "\(error)"]) }
        let shift = min(n - 1, 30)
        let (grown, overflow) = configuration.backoffInitial.inMilliseconds.multipliedReportingOverflow(
            by: Int64(1) << shift)
        let delay = min(configuration.backoffMax.inMilliseconds, overflow ? .max : grown)
        return clock.now().saturatingAdd(max(0, delay))
    }

    private func nextPollTime(after due: Int64, now: Int64? = nil) -> Int64 {
        let now = now ?? clock.now()
        let interval = configuration.interval.inMilliseconds
        guard interval > 0 else { return now }
        var next = due.saturatingAdd(interval)
        if next <= now {  // skip missed ticks
            let skipped = ((now - next) / interval + 1).multipliedReportingOverflow(by: interval)
            next = next.saturatingAdd(skipped.overflow ? .max : skipped.partialValue)
        }
        return next
    }

    /// One poll with timeout; returns its error, or `nil` when it succeeded (success already counted).
    private func pollOnce() async -> (any Error)? {
        let timeout = configuration.timeout.inMilliseconds
        let clock = self.clock
        let outcome: Result<[DeviceRecord], any Error> = await withTaskGroup(
            of: Result<[DeviceRecord], any Error>?.self
        ) {
            group in
            group.addTask { await Result { try await self.poll() } }
            group.addTask {
                do { try await clock.sleep(forMillis: timeout) } catch { return nil }
                return .failure(IoTError(.timeout, "poll took longer than \(timeout) ms"))
            }
            var result: Result<[DeviceRecord], any Error> = .failure(CancellationError())
            while let r = await group.next() {
                if let r {
                    result = r
                    break
                }
            }
            group.cancelAll()
            return result
        }
        switch outcome {
        case .success(let records):
            let now = clock.now()
            state.withLock { s in
                s.successes += 1
                s.consecutiveFailures = 0
                s.lastSuccessAt = now
            }
            if records.isEmpty { return nil }
            let accepted = await retryingBackpressure(
                limitMillis: configuration.backpressureRetryLimit.inMilliseconds, clock: clock
            ) {
                () throws(IoTError) -> Receipt in
                try await gateway.submit(.records(records, transport: name, from: identity)).result.get()
            }
            if case .failure(let error) = accepted {
                logger.warning("poll result not accepted", metadata: ["error": "\(error)"])
            }
            return nil
        case .failure(let error):
            return error
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
