import IoTAuth
public import IoTCore
public import Logging
import ServiceLifecycle

/// The CoAP device listener (RFC 7252 over libcoap): devices `POST` or `PUT` telemetry and get `2.04 Changed`
/// only once it is in the journal.
///
/// URIs (the token is a device access token, as on the HTTP listener):
/// - `coap://host/api/v1/{token}/telemetry`: ThingsBoard's CoAP device API, so ThingsBoard devices work
///   unchanged;
/// - `coap://host/telemetry?token={token}`;
/// - `coap://host/api/v1/devices/{uid}/telemetry?token={token}`, mirroring the HTTP listener (a gateway's token
///   may name another device).
///
/// Bodies: Content-Format 50 (`application/json`, or no Content-Format) is read with
/// ``IoTCore/JSONParser``; 110 (`application/senml+json`) with ``IoTCore/SenMLParser``; any other format is
/// refused with 4.15 unless the device's product names a parser (``IoTCore/Product/parser``). Bodies larger
/// than one datagram arrive block-wise (Block1, RFC 7959); libcoap reassembles them up to
/// ``Configuration/maxBodyBytes``.
///
/// Answers: `2.04` with `{"sequence":…,"records":…,"points":…}` on the journal receipt; otherwise a 4.xx or
/// 5.xx code with the diagnostic payload `{"error": "<code name>", "message": "<what to do>"}` (Content-Format
/// 50): 4.00 (malformed payload, invalid value, unknown signal), 4.01 (no or unknown token), 4.04 (unknown
/// resource or device), 4.13 (body over the limit), 4.15 (unsupported Content-Format), 4.29 and 5.03 with
/// Max-Age (retry later: rate limit, back-pressure, shutdown), 5.00 (journal or storage failure). Requests
/// refused before they held a message are submitted to the gateway as refusals, so every request is counted.
///
/// With ``Configuration/dtls`` the listener also serves `coaps://` with pre-shared keys.
///
/// libcoap's I/O runs on one dedicated thread. A request from a device whose token (in the gateway's
/// credential cache) and registry data are cached goes through the gateway on that thread
/// (``IoTCore/IngestGateway/submitBlocking(_:onCacheMiss:)``, deferring misses) and is answered at once; the first request of a device, and any request whose body needs a
/// product's parser, runs on a Swift task and is answered as a CoAP separate response when the receipt
/// arrives, so the I/O thread never waits for the registry or the authenticator.
///
/// ```swift
/// let gateway = DefaultIngestGateway(ingestor: ingestor, authenticator: TokenAuthenticator(credentials: credentials))
/// let coap = CoAPTransport(configuration: .init(host: "0.0.0.0", port: 5683), gateway: gateway, logger: logger)
/// let group = ServiceGroup(services: [ingestor, coap], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// // coap-client-notls -m post -t 50 -e '{"temp":21.5}' coap://127.0.0.1/api/v1/$TOKEN/telemetry
/// ```
public final class CoAPTransport: Transport {
    /// The configuration in force.
    public let configuration: Configuration
    let gateway: any IngestGateway
    let logger: Logger
    let udpPort = ListeningPort(component: "CoAP listener")
    let dtlsPort = ListeningPort(component: "CoAP DTLS listener")
    let jsonParser = JSONParser()
    let senmlParser = SenMLParser()

    /// `"coap"`: the transport label of messages and counters.
    public var name: String { "coap" }

    /// Creates the listener; nothing is bound until ``run()``.
    ///
    /// - Parameter gateway: where requests go (authentication with its cache, parsing, accounting).
    public init(
        configuration: Configuration = .init(),
        gateway: any IngestGateway,
        logger: Logger = Logger(label: "iot.coap")
    ) {
        self.configuration = configuration
        self.gateway = gateway
        self.logger = logger
    }

    /// A listener with a ``IoTCore/DefaultIngestGateway`` of its own over `ingestor` and `authenticator`,
    /// which remembers a token for a second.
    public convenience init(
        configuration: Configuration = .init(),
        ingestor: Ingestor,
        authenticator: any DeviceAuthenticator,
        logger: Logger = Logger(label: "iot.coap")
    ) {
        self.init(
            configuration: configuration,
            gateway: DefaultIngestGateway(ingestor: ingestor, authenticator: authenticator),
            logger: logger)
    }

    /// Serves until graceful shutdown or cancellation; returns once the I/O thread has stopped (after
    /// answering, for up to ``Configuration/shutdownGrace``, the requests it had accepted).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid configuration, or
    ///   ``IoTCore/IoTError/Code/unavailable`` when a port cannot be bound.
    public func run() async throws {
        do {
            try configuration.validate()
        } catch {
            udpPort.stopped("its configuration is invalid: \(error.message)")
            dtlsPort.stopped("its configuration is invalid: \(error.message)")
            throw error
        }
        let gateway = self.gateway
        let transport = name
        let server = CoAPServer(
            configuration: configuration, logger: logger, udpPort: udpPort, dtlsPort: dtlsPort,
            onRequestNow: { [self] incoming in self.ingestNow(incoming) },
            onRequest: { [self] incoming in await self.ingest(incoming) },
            onRefused: { error in
                _ = gateway.submitBlocking([.refused(error, transport: transport)], onCacheMiss: .deferToAsync)
            })
        server.start()
        // A bind failure ends the thread at once: report it instead of serving nothing.
        do {
            if configuration.port != nil { _ = try await udpPort.wait() }
            if configuration.dtls != nil { _ = try await dtlsPort.wait() }
        } catch {
            server.stop()
            await server.finished()
            throw error
        }
        await withTaskCancellationOrGracefulShutdownHandler {
            await server.finished()
        } onCancelOrGracefulShutdown: {
            server.stop()
        }
    }

    /// The UDP port of plain CoAP; waits until ``run()`` has bound it.
    ///
    /// With ``Configuration/port`` `0` this is the free port the kernel picked (tests use that).
    /// - Throws: when the listener failed to start, has stopped, or has no plain CoAP port.
    public func listeningPort() async throws -> Int {
        try await udpPort.wait()
    }

    /// The UDP port of `coaps://` (DTLS); waits until ``run()`` has bound it.
    /// - Throws: when the listener failed to start, has stopped, or has no DTLS configured.
    public func dtlsListeningPort() async throws -> Int {
        try await dtlsPort.wait()
    }

    /// Authenticates, parses and journals one request on a task; the reply the device gets.
    func ingest(_ incoming: CoAPIncoming) async -> CoAPReply {
        reply(await gateway.submit(submission(incoming)))
    }

    /// The request answered on the I/O thread, when its token, its device and the device's registry data
    /// are all cached and its body is JSON or SenML; `nil` sends it down ``ingest(_:)`` on a task instead.
    func ingestNow(_ incoming: CoAPIncoming) -> CoAPReply? {
        let outcome = gateway.submitBlocking([submission(incoming)], onCacheMiss: .deferToAsync)[0]
        if case .deferred = outcome { return nil }
        return reply(outcome)
    }

    /// The request as a submission: JSON or SenML by its Content-Format, any other format for the
    /// product's parser (a script reading CBOR or CSV) only.
    private func submission(_ incoming: CoAPIncoming) -> IngestSubmission {
        let message = InboundMessage(
            transport: name, topic: incoming.path, contentType: CoAPContentFormat.mediaType(incoming.contentFormat),
            payload: incoming.payload)
        let sender = IngestSubmission.Sender.credential(.token(incoming.route.token), address: incoming.peer)
        let claimed = incoming.route.claimedUID
        switch incoming.contentFormat {
        case nil, CoAPContentFormat.json: return .message(message, parser: jsonParser, from: sender, claiming: claimed)
        case CoAPContentFormat.senmlJSON:
            return .message(message, parser: senmlParser, from: sender, claiming: claimed)
        default:
            return .foreignFormat(
                message,
                refusal: IoTError(
                    .malformedPayload,
                    "Content-Format \(incoming.contentFormat ?? 0) is not supported; send 50 (application/json) or 110 (application/senml+json)"
                ), from: sender, claiming: claimed)
        }
    }

    /// The answer to an outcome; a storage or journal failure is logged.
    private func reply(_ outcome: IngestOutcome) -> CoAPReply {
        switch outcome {
        case .stored(let receipt, _): return .receipt(receipt)
        case .unsupportedFormat(let error): return .error(error, code: 415)
        case .refused(let error):
            if CoAPReply.code(for: error) == 500 {
                logger.error("ingest failed", metadata: ["error": "\(error)"])
            }
            return .error(error)
        case .deferred: return .error(IoTError(.unavailable, "the request was not handled; retry"))
        }
    }
}
