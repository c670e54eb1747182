/// The one way into the ingest pipeline for every transport: the front door.
///
/// A transport reads bytes off its wire and hands each message to the gateway as an ``IngestSubmission``;
/// the gateway owns everything between that and the journal, in one place for every transport:
/// credential → identity (with a short cache), the claimed device, the per-device rate limit, the parser
/// (the transport's choice for the content type, or the parser the device's product names), a gateway
/// device's right to send for its children, back-pressure, and the one counter each message ends in
/// (`iot_ingest_messages_total{outcome, transport, reason}`). It answers with an ``IngestOutcome``, which
/// the transport maps to its wire reply (an HTTP status, a CoAP code, a WebSocket or TCP reply, a PUBACK
/// or none).
///
/// Two shapes only: ``submit(_:)`` for `async` code, and ``submitBlocking(_:onCacheMiss:)`` for a batch
/// from a C library's own thread (libmosquitto's `on_message`, libcoap's I/O loop).
///
/// ```swift
/// let gateway = DefaultIngestGateway(ingestor: ingestor, authenticator: tokens)
/// // in a transport:
/// let outcome = await gateway.submit(
///     .message(InboundMessage(transport: "http", payload: body), parser: JSONParser(),
///              from: .credential(.token(token), address: peer)))
/// switch outcome {
/// case .stored(let receipt, _): reply(200, receipt)
/// case .refused(let error), .unsupportedFormat(let error): reply(status(for: error), error)
/// case .deferred: break  // only from submitBlocking(_:onCacheMiss: .deferToAsync)
/// }
/// ```
///
/// ``DefaultIngestGateway`` is the implementation over an ``Ingestor``; `IoTTesting`'s `RecordingGateway`
/// records submissions, so a transport can be tested without a journal or stores.
///
/// ## Implementing a gateway
/// - Count every submission exactly once, refusals included, and never acknowledge (``IngestOutcome/stored(_:_:)``)
///   a message that is not durable.
/// - A ``IngestSubmission/Content/refused(_:)`` submission is only counted: answer it at once, also from
///   ``submitBlocking(_:onCacheMiss:)``.
public protocol IngestGateway: Sendable {
    /// Whether messages are accepted (the journal has been replayed). Before that every message is refused
    /// with ``IoTError/Code/backpressure``.
    var isReady: Bool { get }

    /// Waits until ``isReady``.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled first.
    func waitUntilReady() async throws

    /// Resolves the credential a session presents once, at its start (a WebSocket upgrade, a TCP
    /// handshake); the session then submits its messages ``IngestSubmission/Sender/device(_:)``.
    /// A refusal is counted as one rejected message of `source`'s transport.
    func authenticate(_ credential: DeviceCredential, source: AuthenticationSource) async
        -> Result<DeviceIdentity, IoTError>

    /// Authenticates, parses, resolves and journals one submission; returns when the device may be
    /// acknowledged (``IngestOutcome/stored(_:_:)``) or must be refused. Never returns
    /// ``IngestOutcome/deferred``.
    func submit(_ submission: IngestSubmission) async -> IngestOutcome

    /// ``submit(_:)`` for a burst of submissions from a thread that is not part of Swift's cooperative pool,
    /// in order, with one journal write for those whose sender and registry data are cached. Returns one
    /// outcome per submission, in order. Never call it from an `async` context.
    ///
    /// - Parameter onCacheMiss: what to do with a submission whose credential or registry data is not
    ///   cached: ``IngestCacheMiss/wait`` blocks the thread until a task has loaded it (libmosquitto's
    ///   callback thread, which must not return before the message is journaled);
    ///   ``IngestCacheMiss/deferToAsync`` answers ``IngestOutcome/deferred``, having counted nothing, and the
    ///   caller submits it again with ``submit(_:)`` on a task (an I/O loop that must never wait, libcoap's).
    func submitBlocking(_ batch: [IngestSubmission], onCacheMiss: IngestCacheMiss) -> [IngestOutcome]
}

/// What ``IngestGateway/submitBlocking(_:onCacheMiss:)`` does with a submission it cannot finish from
/// cached data.
public enum IngestCacheMiss: Sendable, Hashable {
    /// Block the calling thread until a task has loaded what is missing and finished the submission.
    case wait
    /// Answer ``IngestOutcome/deferred`` at once, having counted nothing.
    case deferToAsync
}

/// One message (or one refusal) a transport hands to the ``IngestGateway``.
public struct IngestSubmission: Sendable {
    /// Who sent it.
    public enum Sender: Sendable, Hashable {
        /// A credential the gateway resolves (its short cache first), presented from `address` (the peer's
        /// address without the port, or `""`).
        case credential(DeviceCredential, address: String)
        /// A device the transport has already authenticated (a session's device, an MQTT topic's device,
        /// a polled device).
        case device(DeviceIdentity)
        /// Nobody known yet (a refusal before authentication).
        case unidentified
    }

    /// What was received.
    public enum Content: Sendable {
        /// A message for `parser`: the transport's parser for the message's content type, topic or
        /// listener. The parser the sender's product names (``Product/parser``) takes precedence.
        case message(InboundMessage, parser: any Parser)
        /// A message in a format the transport does not read (an unknown content type): stored when the
        /// sender's product names a parser, otherwise refused with `refusal`
        /// (``IngestOutcome/unsupportedFormat(_:)``).
        case foreignFormat(InboundMessage, refusal: IoTError)
        /// Records the transport decoded itself (a Modbus poll, a custom transport).
        case records([DeviceRecord], receivedAt: Int64?)
        /// Something the transport refused before a message could be read out of it (an oversize frame,
        /// a failed TLS handshake, a frame that does not decode): only counted.
        case refused(IoTError)
    }

    /// The transport's name (counters, logs).
    public var transport: String
    /// Who sent it.
    public var sender: Sender
    /// What was received.
    public var content: Content
    /// The device the request names (a URL's device uid): refused with ``IoTError/Code/forbidden`` unless
    /// the authenticated sender is that device. `nil` when the request names none.
    public var claimedDeviceUID: String?

    /// Creates a submission; the ``message(_:parser:from:claiming:)`` family reads better.
    public init(transport: String, sender: Sender, content: Content, claimedDeviceUID: String? = nil) {
        self.transport = transport
        self.sender = sender
        self.content = content
        self.claimedDeviceUID = claimedDeviceUID
    }

    /// A message for `parser` (the transport is the message's).
    public static func message(
        _ message: InboundMessage, parser: any Parser, from sender: Sender, claiming deviceUID: String? = nil
    ) -> IngestSubmission {
        IngestSubmission(
            transport: message.transport, sender: sender, content: .message(message, parser: parser),
            claimedDeviceUID: deviceUID)
    }

    /// A message in a format the transport does not read: stored when the sender's product names a parser,
    /// otherwise refused with `refusal`.
    public static func foreignFormat(
        _ message: InboundMessage, refusal: IoTError, from sender: Sender, claiming deviceUID: String? = nil
    ) -> IngestSubmission {
        IngestSubmission(
            transport: message.transport, sender: sender, content: .foreignFormat(message, refusal: refusal),
            claimedDeviceUID: deviceUID)
    }

    /// Records of `device` that the transport decoded itself, received at `receivedAt` (epoch ms; the
    /// gateway's clock when `nil`).
    public static func records(
        _ records: [DeviceRecord], transport: String, from device: DeviceIdentity, receivedAt: Int64? = nil
    ) -> IngestSubmission {
        IngestSubmission(
            transport: transport, sender: .device(device), content: .records(records, receivedAt: receivedAt))
    }

    /// Something refused before a message could be read out of it: only counted.
    public static func refused(_ error: IoTError, transport: String, from sender: Sender = .unidentified)
        -> IngestSubmission
    {
        IngestSubmission(transport: transport, sender: sender, content: .refused(error))
    }
}

/// How the ``IngestGateway`` answered a submission. Every outcome has been counted.
public enum IngestOutcome: Sendable {
    /// Journaled: acknowledge the device now. The identity is the authenticated sender.
    case stored(Receipt, DeviceIdentity)
    /// Refused: nothing was stored. The error's code says why (``IoTError/Code/backpressure`` and
    /// ``IoTError/Code/rateLimited`` carry a retry delay).
    case refused(IoTError)
    /// Refused because neither the transport nor the sender's product reads the message's format (HTTP 415,
    /// CoAP 4.15); the error is the submission's ``IngestSubmission/Content/foreignFormat(_:refusal:)``
    /// refusal.
    case unsupportedFormat(IoTError)
    /// Not handled: its sender or registry data is not cached and the batch was submitted with
    /// ``IngestCacheMiss/deferToAsync``. Nothing was counted; submit it with ``IngestGateway/submit(_:)``.
    case deferred

    /// The receipt, or the error of a refusal; a ``deferred`` outcome is ``IoTError/Code/unavailable``
    /// (it has no result yet).
    public var result: Result<Receipt, IoTError> {
        switch self {
        case .stored(let receipt, _): .success(receipt)
        case .refused(let error), .unsupportedFormat(let error): .failure(error)
        case .deferred:
            .failure(
                IoTError(.unavailable, "the submission was deferred and has no result yet; submit it with submit(_:)"))
        }
    }

    /// The receipt, or `nil` for a refusal (or a deferred submission).
    public var receipt: Receipt? {
        if case .stored(let receipt, _) = self { return receipt }
        return nil
    }

    /// The error of a refusal, or `nil`.
    public var error: IoTError? {
        switch self {
        case .refused(let error), .unsupportedFormat(let error): error
        case .stored, .deferred: nil
        }
    }
}
