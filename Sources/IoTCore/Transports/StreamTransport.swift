public import Logging
import ServiceLifecycle

/// An open base class for devices that send bytes over a stream: a serial line, a TCP connection, a pipe.
///
/// Override ``connect()`` to open the stream, and optionally the framing (``nextFrame(from:)``, newline-
/// delimited by default), the decoding (``decode(_:)``, the frame as the payload by default) and the
/// acknowledgement (``acknowledgement(for:)``, none by default). The base class reads, frames, submits
/// each message to the ``IngestGateway`` as its device's, writes the acknowledgement only after the journal receipt,
/// rejects oversize frames without losing the stream, and reconnects with backoff.
///
/// ```swift
/// final class SerialSensor: StreamTransport, @unchecked Sendable {
///     override func connect() async throws -> any ByteStream {
///         let fd = open("/dev/ttyUSB0", O_RDWR | O_NOCTTY)
///         guard fd >= 0 else { throw IoTError(.unavailable, "cannot open /dev/ttyUSB0") }
///         return FileDescriptorStream(descriptor: fd)
///     }
///     override func acknowledgement(for result: Result<Receipt, IoTError>) -> [UInt8]? {
///         Array((result.isSuccess ? "OK\n" : "ERR\n").utf8)
///     }
/// }
/// ```
///
/// A server transport (TCP) accepts connections itself and calls ``serve(_:identity:)`` for each.
///
/// ## Subclassing
/// Keep your own state `Sendable` (the base class is `@unchecked Sendable`: its stored properties are
/// immutable). ``nextFrame(from:)`` and ``decode(_:)`` are called for one stream at a time.
open class StreamTransport: Transport, @unchecked Sendable {
    /// Limits and reconnection.
    public struct Configuration: Sendable {
        /// Largest frame accepted, in bytes; a larger one is rejected (and counted) and skipped up to the
        /// next frame boundary. Default 65 536.
        public var maxFrameBytes: Int
        /// First delay before reconnecting; doubles per failure. Default 500 ms.
        public var reconnectInitialDelay: Duration
        /// Longest delay before reconnecting. Default 30 000 ms.
        public var reconnectMaxDelay: Duration
        /// How long a frame the ingestor refuses with ``IoTError/Code/backpressure`` (it is starting, or the
        /// store is behind: nothing was accepted) is tried again, waiting the delay the ingestor
        /// suggests between tries; reading the stream pauses meanwhile, so the device is held back by flow
        /// control. Past it the refusal is answered (``acknowledgement(for:)``). `0` answers it at once.
        /// Every try is counted (as `dropped{reason="backpressure"}` until one is stored). Default 30 000 ms.
        public var backpressureRetryLimit: Duration

        /// Creates a configuration with the documented defaults.
        public init(
            maxFrameBytes: Int = 65_536, reconnectInitialDelay: Duration = .milliseconds(500),
            reconnectMaxDelay: Duration = .seconds(30),
            backpressureRetryLimit: Duration = .seconds(30)
        ) {
            self.maxFrameBytes = maxFrameBytes
            self.reconnectInitialDelay = reconnectInitialDelay
            self.reconnectMaxDelay = reconnectMaxDelay
            self.backpressureRetryLimit = backpressureRetryLimit
        }
    }

    /// The transport's name (counters, logs).
    public let name: String
    /// The device on the stream (for ``run()``; servers pass one per connection to ``serve(_:identity:)``).
    public let identity: DeviceIdentity
    /// The parser for decoded messages.
    public let parser: any Parser
    /// Limits and reconnection.
    public let configuration: Configuration
    /// Where messages go.
    public let gateway: any IngestGateway
    /// The clock for reconnection delays.
    public let clock: any IoTClock
    /// The logger.
    public let logger: Logger

    /// Creates a stream transport for one device.
    public init(
        name: String, identity: DeviceIdentity, parser: any Parser, configuration: Configuration = Configuration(),
        gateway: any IngestGateway, clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.stream")
    ) {
        self.name = name
        self.identity = identity
        self.parser = parser
        self.configuration = configuration
        self.gateway = gateway
        self.clock = clock
        self.logger = logger
    }

    /// Creates a stream transport for one device that submits to a ``DefaultIngestGateway`` over
    /// `ingestor` (its messages are the device's own: no credential to check).
    public init(
        name: String, identity: DeviceIdentity, parser: any Parser, configuration: Configuration = Configuration(),
        ingestor: Ingestor, clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.stream")
    ) {
        self.name = name
        self.identity = identity
        self.parser = parser
        self.configuration = configuration
        self.gateway = DefaultIngestGateway(ingestor: ingestor)
        self.clock = clock
        self.logger = logger
    }

    /// Opens the stream. Override it; the default throws.
    open func connect() async throws -> any ByteStream {
        throw IoTError(.invalidArgument, "\(type(of: self)) must override connect()")
    }

    /// Cuts the next frame off the front of `buffer`, or returns `nil` when it holds no complete frame.
    /// The default splits on `\n` and drops a trailing `\r`; empty lines are skipped.
    open func nextFrame(from buffer: inout [UInt8]) throws(IoTError) -> [UInt8]? {
        while let i = buffer.firstIndex(of: 0x0A) {
            var frame = Array(buffer[..<i])
            buffer.removeFirst(i + 1)
            if frame.last == 0x0D { frame.removeLast() }
            if !frame.isEmpty { return frame }
        }
        return nil
    }

    /// Where the current oversize frame ends (to skip it), or `nil` when the buffer holds no boundary.
    /// The default looks for `\n`. Override it together with ``nextFrame(from:)``.
    open func skipOversizeFrame(in buffer: [UInt8]) -> Int? {
        buffer.firstIndex(of: 0x0A).map { $0 + 1 }
    }

    /// The total length in bytes (header included) of an oversize frame at the front of `buffer`, when the
    /// framing declares it before the frame arrives (length-prefixed framing); `nil` otherwise (the
    /// default). The base class then rejects the frame at once and ends the stream: a header that announces
    /// more than the limit may be garbage, and skipping the bytes it announces would swallow the frames that
    /// follow.
    open func oversizeFrameLength(in buffer: [UInt8]) -> Int? { nil }

    /// Turns a frame into a message. The default uses the frame as the payload.
    open func decode(_ frame: [UInt8], identity: DeviceIdentity) throws(IoTError) -> InboundMessage {
        InboundMessage(transport: name, deviceUID: identity.deviceUID, payload: frame)
    }

    /// The bytes written back after a frame was handled, or `nil` for none (the default).
    open func acknowledgement(for result: Result<Receipt, IoTError>) -> [UInt8]? { nil }

    /// Connects, serves until the stream ends, and reconnects with backoff, until cancelled or until a
    /// graceful shutdown (SIGTERM to a `ServiceGroup`), which closes the stream: a frame read but not yet
    /// acknowledged is not acknowledged, so the device sends it again. A server transport overrides it to
    /// accept connections and call ``serve(_:identity:)`` for each.
    open func run() async throws {
        try await cancelWhenGracefulShutdown { [self] in try await connectAndServe() }
    }

    /// ``run()``'s loop: connect, serve, back off, again, until cancelled.
    private func connectAndServe() async throws {
        var delay = configuration.reconnectInitialDelay.inMilliseconds
        while !Task.isCancelled {
            do {
                let stream = try await connect()
                delay = configuration.reconnectInitialDelay.inMilliseconds
                try await withTaskCancellationHandler {
                    try await serve(stream, identity: identity)
                } onCancel: {
                    Task { await stream.close() }
                }
                await stream.close()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("stream failed; reconnecting", metadata: ["error": "\(error)", "retry_ms": "\(delay)"])
            }
            do { try await clock.sleep(forMillis: delay) } catch { return }
            delay = min(delay * 2, configuration.reconnectMaxDelay.inMilliseconds)
        }
    }

    /// Reads frames from `stream` until it ends, ingesting each as a message of `identity`.
    public func serve(_ stream: any ByteStream, identity: DeviceIdentity) async throws {
        var buffer: [UInt8] = []
        var skipping = false
        while let chunk = try await stream.read() {
            buffer.append(contentsOf: chunk)
            while true {
                if skipping {
                    guard let end = skipOversizeFrame(in: buffer) else {
                        buffer.removeAll(keepingCapacity: true)
                        break
                    }
                    buffer.removeFirst(end)
                    skipping = false
                }
                let frame: [UInt8]?
                do {
                    frame = try nextFrame(from: &buffer)
                } catch {
                    await refuse(error, identity)
                    try await reply(.failure(error), on: stream)
                    buffer.removeAll(keepingCapacity: true)
                    break
                }
                guard let frame else {
                    if let total = oversizeFrameLength(in: buffer) {
                        let error = IoTError(
                            .payloadTooLarge,
                            "frame of \(total) bytes exceeds \(configuration.maxFrameBytes); the connection is closed")
                        await refuse(error, identity)
                        try await reply(.failure(error), on: stream)
                        return
                    }
                    if buffer.count > configuration.maxFrameBytes {
                        let error = IoTError(
                            .payloadTooLarge,
                            "frame exceeds \(configuration.maxFrameBytes) bytes; it was skipped")
                        await refuse(error, identity)
                        try await reply(.failure(error), on: stream)
                        skipping = true
                        continue
                    }
                    break
                }
                if frame.isEmpty {
                    // Only a subclass's nextFrame returns an empty frame (the default skips empty lines).
                    let error = IoTError.malformed("an empty message; send one message per frame")
                    await refuse(error, identity)
                    try await reply(.failure(error), on: stream)
                    continue
                }
                if frame.count > configuration.maxFrameBytes {
                    let error = IoTError(
                        .payloadTooLarge, "frame of \(frame.count) bytes exceeds \(configuration.maxFrameBytes)")
                    await refuse(error, identity)
                    try await reply(.failure(error), on: stream)
                    continue
                }
                let message: InboundMessage
                do {
                    message = try decode(frame, identity: identity)
                } catch {
                    await refuse(error, identity)
                    try await reply(.failure(error), on: stream)
                    continue
                }
                try await reply(await ingestRetryingBackpressure(message, identity: identity), on: stream)
            }
        }
    }

    /// Submits `message`, retrying a back-pressure refusal for up to ``Configuration/backpressureRetryLimit``
    /// (the caller reads nothing meanwhile). Every outcome is already counted by the gateway.
    private func ingestRetryingBackpressure(
        _ message: InboundMessage, identity: DeviceIdentity
    ) async -> Result<Receipt, IoTError> {
        let submission = IngestSubmission.message(message, parser: parser, from: .device(identity))
        return await retryingBackpressure(
            limitMillis: configuration.backpressureRetryLimit.inMilliseconds, clock: clock
        ) {
            () throws(IoTError) -> Receipt in
            try await gateway.submit(submission).result.get()
        }
    }

    /// Counts a frame refused before it became a message.
    private func refuse(_ error: IoTError, _ identity: DeviceIdentity) async {
        _ = await gateway.submit(.refused(error, transport: name, from: .device(identity)))
    }

    private func reply(_ result: Result<Receipt, IoTError>, on stream: any ByteStream) async throws {
        if let ack = acknowledgement(for: result) { try await stream.write(ack) }
    }
}

extension Result {
    /// Whether this is a success.
    public var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
