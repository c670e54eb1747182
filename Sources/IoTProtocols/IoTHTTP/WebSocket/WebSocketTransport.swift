import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
public import IoTCore
import IoTListener
public import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The WebSocket device listener: a device authenticates at the upgrade, then sends messages (text or
/// binary frames), each answered with an ack frame after its journal receipt; the server pings it, closes
/// it when idle, and delivers downlink messages.
///
/// - Connect to ``Configuration/path`` with `Authorization: Bearer <token>` (a long-lived token or one
///   from token exchange), `Authorization: Basic <username:password>`, or `?token=<token>` (browsers); on
///   a TLS listener that asks for client certificates (``Configuration/tls``, `wss://`), with none of
///   these the device is the one its verified client certificate is registered to.
///   The credential is checked before the upgrade completes and the refusal is counted there; since
///   Hummingbird answers every declined upgrade with a bare 400, a refused device instead gets the
///   upgrade and at once a close frame saying why: 4401 (missing, wrong, expired or revoked credential),
///   4403 (forbidden), 4429 (too many failed attempts from the address; retry later), with the message
///   as the close reason. Browsers see close codes, never the status of a failed upgrade.
/// - Each message is parsed by the listener's parser and answered, in order, with
///   `{"type":"ack","n":<message number>,"ok":true,"sequence":…,"records":…,"points":…}` or
///   `{"type":"ack","n":…,"ok":false,"error":"<code>","message":"<what to do>"}`.
/// - Downlink messages (``IoTCore/DeviceSessions/send(_:to:)``, a JSON payload) arrive as
///   `{"type":"downlink","data":<payload>}`.
/// - Pings go out every ``Configuration/pingInterval``; an unanswered ping closes the connection.
///   No message for ``Configuration/idleTimeout`` closes it with 1001. Revoking the device's
///   credentials closes it with 1008 (policy violation).
///
/// ```swift
/// let ws = WebSocketTransport(configuration: .init(port: 8083), ingestor: ingestor, authenticator: auth,
///                             sessions: auth.sessions, logger: logger)
/// // python: websockets.connect("ws://127.0.0.1:8083/api/v1/devices/ws",
/// //                            additional_headers={"Authorization": "Bearer " + token})
/// ```
public final class WebSocketTransport: Transport {
    /// The configuration in force.
    public let configuration: Configuration
    let gateway: any IngestGateway
    /// Live connections, closed on revocation and used for downlink.
    public let sessions: DeviceSessions
    let parser: any Parser
    let logger: Logger
    let port = ListeningPort(component: "WebSocket listener")
    /// Devices accepted by the upgrade check, handed to their connection, keyed by peer address and port.
    let handoff = Mutex<[String: DeviceIdentity]>([:])

    /// `"websocket"`: the transport label of messages and counters.
    public var name: String { "websocket" }

    /// Creates the listener; nothing is bound until ``run()``.
    ///
    /// - Parameters:
    ///   - gateway: checks the credential of each upgrade, and takes the connection's messages.
    ///   - parser: reads each message (JSON by default).
    public init(
        configuration: Configuration = .init(), gateway: any IngestGateway,
        sessions: DeviceSessions = DeviceSessions(), parser: any Parser = JSONParser(),
        logger: Logger = Logger(label: "iot.websocket")
    ) {
        self.configuration = configuration
        self.gateway = gateway
        self.sessions = sessions
        self.parser = parser
        self.logger = logger
    }

    /// A listener with a ``IoTCore/DefaultIngestGateway`` of its own over `ingestor` and `authenticator`
    /// (no credential cache).
    public convenience init(
        configuration: Configuration = .init(), ingestor: Ingestor, authenticator: any DeviceAuthenticator,
        sessions: DeviceSessions = DeviceSessions(), parser: any Parser = JSONParser(),
        logger: Logger = Logger(label: "iot.websocket")
    ) {
        self.init(
            configuration: configuration,
            gateway: DefaultIngestGateway.uncached(ingestor, authenticator: authenticator),
            sessions: sessions, parser: parser, logger: logger)
    }

    /// Serves until graceful shutdown or cancellation.
    public func run() async throws {
        do {
            try configuration.validate()
        } catch {
            port.stopped("its configuration is invalid: \(error.message)")
            throw error
        }
        let path = RouterPath(configuration.path)
        let router = Router(context: DeviceRequestContext.self)
        router.get(path) { _, _ -> Response in
            IngestResponses.error(
                IoTError(.invalidArgument, "this is a WebSocket endpoint; connect with a WebSocket client"),
                status: .badRequest)
        }
        let wsRouter = Router(context: DeviceRequestContext.self)
        wsRouter.add(middleware: ForwardedForMiddleware(proxies: configuration.limits.trustedProxies))
        wsRouter.ws(path) { request, context in
            await self.shouldUpgrade(request, context: context)
        } onUpgrade: { inbound, outbound, context in
            await self.serve(
                inbound: inbound, outbound: outbound, peerKey: context.requestContext.peerKey,
                address: context.requestContext.peerAddress, channel: context.requestContext.channel)
        }
        let ws = WebSocketServerConfiguration(
            maxFrameSize: configuration.maxMessageBytes * 4,
            autoPing: .enabled(timePeriod: .nanoseconds(configuration.pingInterval.inNanoseconds)),
            closeTimeout: .seconds(2))
        let tls = configuration.tls
        let limits = configuration.limits
        try await ListenerServer.serve(
            router: router, host: configuration.host, port: configuration.port, listening: port,
            announcement: "WebSocket listening", logger: logger,
            makeServer: {
                try HTTPIngestTransport.webSocketUpgradeServer(
                    tls: tls, limiter: ConnectionLimiter(limits: limits, listener: "websocket"),
                    webSocketRouter: wsRouter, webSocket: ws)
            },
            onBound: { [gateway = self.gateway, name = self.name] channel in
                await HTTPIngestTransport.watchHandshakes(on: channel, tls: tls, gateway: gateway, transport: name)
            })
    }

    /// The port the listener is bound to; waits until ``run()`` has bound it.
    public func listeningPort() async throws -> Int {
        try await port.wait()
    }

    // MARK: Upgrade

    /// Checks the credential. A refusal declines the upgrade, and the request is answered as plain HTTP by
    /// the listener's route for the path: `401` (no or a wrong credential), `403` or `429`, with the JSON
    /// error, so a client sees the reason before any WebSocket exists.
    private func shouldUpgrade(_ request: Request, context: DeviceRequestContext) async -> RouterShouldUpgrade {
        let credential: DeviceCredential
        if let fromHeader = HTTPIngestTransport.credential(request.headers[.authorization]) {
            credential = fromHeader
        } else if let token = request.uri.queryParameters.get("token"), !token.isEmpty {
            credential = .token(token)
        } else if configuration.tls.map({ $0.clientCertificates != .none }) == true,
            let peer = await PeerCertificate.of(context.channel)
        {
            credential = peer.credential
        } else {
            await refuseUpgrade(
                IoTError(
                    .unauthorized,
                    "no device credential; send \"Authorization: Bearer <token>\", \"Authorization: Basic …\" or ?token=<token>"
                ),
                context: context)
            return .dontUpgrade
        }
        switch await gateway.authenticate(
            credential, source: AuthenticationSource(transport: name, address: context.peerAddress))
        {
        case .success(let identity):
            handoff.withLock { $0[context.peerKey] = identity }
            return .upgrade([:])
        case .failure(let error):
            await Self.answerBeforeUpgrade(error, on: context.channel)  // the gateway counted it
            return .dontUpgrade
        }
    }

    private func refuseUpgrade(_ error: IoTError, context: DeviceRequestContext) async {
        _ = await gateway.submit(.refused(error, transport: name))
        await Self.answerBeforeUpgrade(error, on: context.channel)
    }

    /// Writes the refusal as a plain HTTP response (`401`/`403`/`429` with the JSON error and `Retry-After`
    /// where it applies) and closes the connection. hummingbird-websocket answers every declined upgrade
    /// with a bare `400` and no body; this response goes out first, below the HTTP encoder, and that `400`
    /// then finds the connection closed.
    static func answerBeforeUpgrade(_ error: IoTError, on channel: any Channel) async {
        let status = IngestResponses.status(for: error)
        let body = #"{"error":\#(jsonString(error.code.name)),"message":\#(jsonString(error.message))}"#
        var head =
            "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n"
        if let millis = error.retryAfterMillis { head += "Retry-After: \(max(1, (millis + 999) / 1000))\r\n" }
        if status == .unauthorized { head += "WWW-Authenticate: Bearer\r\n" }
        let bytes = ByteBuffer(string: head + "\r\n" + body)
        let written = channel.eventLoop.submit { () -> EventLoopFuture<Void> in
            guard let encoder = try? channel.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
            else {
                return channel.close()
            }
            return encoder.writeAndFlush(NIOAny(bytes)).always { _ in channel.close(promise: nil) }
        }.flatMap { $0 }
        try? await written.get()
    }

}
