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
/// - `coap://host/telemetry?token={token}`.
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
/// refused before the ingestor saw them are counted through
/// ``IoTCore/Ingestor/recordRejected(transport:error:)``.
///
/// With ``Configuration/dtls`` the listener also serves `coaps://` with pre-shared keys.
///
/// libcoap's I/O runs on one dedicated thread. A request from a device whose token (within
/// ``Configuration/authenticationCacheMillis``) and registry data are cached goes through the ingestor on
/// that thread and is answered at once; the first request of a device, and any request whose body needs a
/// product's parser, runs on a Swift task and is answered as a CoAP separate response when the receipt
/// arrives, so the I/O thread never waits for the registry or the authenticator.
///
/// ```swift
/// let coap = CoAPTransport(
///     configuration: .init(host: "0.0.0.0", port: 5683),
///     ingestor: ingestor, authenticator: TokenAuthenticator(credentials: credentials), logger: logger)
/// let group = ServiceGroup(services: [ingestor, coap], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// // coap-client-notls -m post -t 50 -e '{"temp":21.5}' coap://127.0.0.1/api/v1/$TOKEN/telemetry
/// ```
public final class CoAPTransport: Transport {
    /// The configuration in force.
    public let configuration: Configuration
    let ingestor: Ingestor
    let authenticator: any DeviceAuthenticator
    let logger: Logger
    let authenticationCache: AuthenticationCache?
    let udpPort = ListeningPort(component: "CoAP listener")
    let dtlsPort = ListeningPort(component: "CoAP DTLS listener")
    let jsonParser = JSONParser()
    let senmlParser = SenMLParser()

    /// `"coap"`: the transport label of messages and counters.
    public var name: String { "coap" }

    /// Creates the listener; nothing is bound until ``run()``.
    public init(
        configuration: Configuration = .init(),
        ingestor: Ingestor,
        authenticator: any DeviceAuthenticator,
        logger: Logger = Logger(label: "iot.coap")
    ) {
        self.configuration = configuration
        self.ingestor = ingestor
        self.authenticator = authenticator
        self.logger = logger
        self.authenticationCache =
            configuration.authenticationCacheMillis > 0
            ? AuthenticationCache(ttlMillis: configuration.authenticationCacheMillis) : nil
    }

    /// Serves until graceful shutdown or cancellation; returns once the I/O thread has stopped (after
    /// answering, for up to ``Configuration/shutdownGraceMillis``, the requests it had accepted).
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
        let ingestor = self.ingestor
        let transport = name
        let server = CoAPServer(
            configuration: configuration, logger: logger, udpPort: udpPort, dtlsPort: dtlsPort,
            onRequestNow: { [self] incoming in self.ingestNow(incoming) },
            onRequest: { [self] incoming in await self.ingest(incoming) },
            onRefused: { error in ingestor.recordRejected(transport: transport, error: error) })
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

    /// Authenticates, parses and journals one request; the reply the device gets.
    func ingest(_ incoming: CoAPIncoming) async -> CoAPReply {
        let identity: DeviceIdentity
        let credential = DeviceCredential.token(incoming.route.token)
        let key = incoming.route.token  // the cache holds tokens only
        if let cached = authenticationCache?.identity(for: key) {
            identity = cached
        } else {
            do {
                identity = try await authenticator.authenticate(
                    credential, source: AuthenticationSource(transport: name, address: incoming.peer))
                authenticationCache?.remember(identity, for: key)
            } catch {
                if error.code != .unauthorized {
                    logger.error("device authentication failed", metadata: ["error": "\(error)"])
                }
                return refuse(error)
            }
        }
        var parser: (any Parser)?
        switch incoming.contentFormat {
        case nil, CoAPContentFormat.json: parser = jsonParser
        case CoAPContentFormat.senmlJSON: parser = senmlParser
        default:
            // A product that names its parser (a script reading CBOR or CSV) reads any format.
            if (try? await ingestor.productParserName(for: identity)) != nil { parser = jsonParser }
        }
        guard let parser else {
            return refuse(
                IoTError(
                    .malformedPayload,
                    "Content-Format \(incoming.contentFormat ?? 0) is not supported; send 50 (application/json) or 110 (application/senml+json)"
                ), code: 415)
        }
        do {
            return .receipt(try await ingestor.ingest(message(incoming, identity), parser: parser, identity: identity))
        } catch {
            return failed(error, identity)
        }
    }

    /// The request answered on the I/O thread, when its token, its device and the device's registry data
    /// are all cached and its body is JSON or SenML; `nil` sends it down ``ingest(_:)`` on a task instead.
    func ingestNow(_ incoming: CoAPIncoming) -> CoAPReply? {
        guard let authenticationCache,
            let identity = authenticationCache.identity(for: incoming.route.token)
        else { return nil }
        let parser: any Parser
        switch incoming.contentFormat {
        case nil, CoAPContentFormat.json: parser = jsonParser
        case CoAPContentFormat.senmlJSON: parser = senmlParser
        default: return nil
        }
        do {
            guard
                let receipt = try ingestor.ingestIfCached(
                    message(incoming, identity), parser: parser, identity: identity)
            else { return nil }
            return .receipt(receipt)
        } catch {
            return failed(error, identity)
        }
    }

    private func message(_ incoming: CoAPIncoming, _ identity: DeviceIdentity) -> InboundMessage {
        InboundMessage(
            transport: name, deviceUID: identity.deviceUID, topic: incoming.path,
            contentType: CoAPContentFormat.mediaType(incoming.contentFormat), payload: incoming.payload)
    }

    /// The answer to a request the ingestor refused (and counted); a storage or journal failure is logged.
    private func failed(_ error: IoTError, _ identity: DeviceIdentity) -> CoAPReply {
        if CoAPReply.code(for: error) == 500 {
            logger.error("ingest failed", metadata: ["error": "\(error)", "device": "\(identity)"])
        }
        return .error(error)
    }

    /// Counts a request the ingestor never saw and builds its answer.
    private func refuse(_ error: IoTError, code: Int? = nil) -> CoAPReply {
        ingestor.recordRejected(transport: name, error: error)
        return .error(error, code: code)
    }
}
