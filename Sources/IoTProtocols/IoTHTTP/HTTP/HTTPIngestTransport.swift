package import Hummingbird
package import HummingbirdCore
package import HummingbirdWebSocket
public import IoTAuth
public import IoTCore
package import IoTListener
public import Logging
import NIOCore
package import Synchronization

/// The HTTP device listener: devices post telemetry, and get `200` only once it is in the journal.
///
/// Endpoints:
/// - `POST /api/v1/devices/{uid}/telemetry` with `Authorization: Bearer <device token>`; the body is JSON
///   (``IoTCore/JSONParser``: an object, `{"ts", "values"}`, an array of those, or the gateway form) or
///   SenML (`Content-Type: application/senml+json`). Answers `{"sequence":…,"records":…,"points":…}`.
/// - ThingsBoard's device API, `POST /api/v1/{token}/telemetry`, with the body forms ThingsBoard accepts
///   (an object, `{"ts", "values"}`, or an array of those), so existing ThingsBoard devices work
///   unchanged. Answers `200` with an empty body, as ThingsBoard does.
/// - With a ``DeviceAuthService`` as authenticator: `POST /api/v1/devices/auth` exchanges
///   `{"username", "password"}` for a short-lived token (`{"token", "tokenType", "expiresAt", "expiresIn",
///   "deviceUID"}`), and `POST /api/v1/devices/auth/refresh` with `Authorization: Bearer <that token>`
///   renews it. Telemetry also accepts `Authorization: Basic` (username and password). Failed attempts
///   are limited per client address (429 with `Retry-After` while blocked).
///
/// With ``Configuration/tls`` the listener speaks HTTPS (TLS 1.2 or later); when it asks for client
/// certificates, a telemetry request without `Authorization` is the device its verified certificate is
/// registered to. A failed TLS handshake is counted as rejected.
///
/// Errors are JSON `{"error": "<code name>", "message": "<what to do>"}`: 400 (malformed payload,
/// invalid value, unknown signal), 401 (missing or unknown token), 403 (the token belongs to another
/// device), 404 (unknown device), 413 (body over ``Configuration/maxBodyBytes``, refused from
/// `Content-Length` before the body is read), 415 (unsupported content type), 429 with `Retry-After`
/// (over the per-device ``IoTCore/Ingestor/Configuration/rateLimit``), 503 with `Retry-After` (the store is behind or the
/// ingestor is starting or stopping), 500 (journal or storage failure). Every request, refused or not, is
/// a submission to the ``IoTCore/IngestGateway`` and counted there, so ``IoTCore/Ingestor/statistics``
/// covers every request.
///
/// Telemetry of a device the gateway has cached (every request after its first, within the caches'
/// lifetimes) is answered on the connection's event loop, with the router's replies; the router answers
/// everything else, and the requests behind one it holds, so replies keep their order.
///
/// ```swift
/// let gateway = DefaultIngestGateway(ingestor: ingestor, authenticator: TokenAuthenticator(credentials: credentials))
/// let http = HTTPIngestTransport(configuration: .init(host: "0.0.0.0", port: 8080), gateway: gateway, logger: logger)
/// let group = ServiceGroup(services: [ingestor, http], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// // curl -X POST http://127.0.0.1:8080/api/v1/$TOKEN/telemetry -d '{"temp": 21.5}'
/// ```
public final class HTTPIngestTransport: Transport {
    /// The configuration in force.
    public let configuration: Configuration
    let gateway: any IngestGateway
    /// Answers `/api/v1/devices/auth` (token exchange), or `nil` to answer 404 there.
    let tokenService: DeviceAuthService?
    let logger: Logger
    /// Connection caps of the listener (``Configuration/limits``).
    let limiter: ConnectionLimiter
    let port = ListeningPort(component: "HTTP ingest listener")
    let jsonParser = JSONParser()
    let thingsBoardParser = JSONParser(configuration: .init(layout: .device))
    let senmlParser = SenMLParser()
    /// Requests answered on the event loop (``TelemetryFastPath``) rather than by the router; tests read it.
    package let eventLoopAnswers = Atomic<Int>(0)

    /// `"http"`: the transport label of messages and counters.
    public var name: String { "http" }

    /// Creates the listener; nothing is bound until ``run()``.
    ///
    /// An invalid configuration is reported by ``run()``; call ``Configuration/validate()`` to check it
    /// earlier.
    ///
    /// - Parameters:
    ///   - gateway: where requests go (authentication, parsing, accounting).
    ///   - tokenService: answers the token exchange (`/api/v1/devices/auth`, `/api/v1/devices/auth/refresh`);
    ///     `nil` answers 404 there.
    public init(
        configuration: Configuration = .init(),
        gateway: any IngestGateway,
        tokenService: DeviceAuthService? = nil,
        logger: Logger = Logger(label: "iot.http")
    ) {
        self.configuration = configuration
        self.gateway = gateway
        self.tokenService = tokenService
        self.logger = logger
        self.limiter = ConnectionLimiter(limits: configuration.limits, listener: "http")
    }

    /// A listener with a ``IoTCore/DefaultIngestGateway`` of its own over `ingestor` and `authenticator`
    /// (no credential cache: every request asks the authenticator). The token exchange is on when
    /// `authenticator` is a ``IoTAuth/DeviceAuthService``.
    public convenience init(
        configuration: Configuration = .init(),
        ingestor: Ingestor,
        authenticator: any DeviceAuthenticator,
        logger: Logger = Logger(label: "iot.http")
    ) {
        self.init(
            configuration: configuration,
            gateway: DefaultIngestGateway.uncached(ingestor, authenticator: authenticator),
            tokenService: authenticator as? DeviceAuthService, logger: logger)
    }

    /// Serves until graceful shutdown or cancellation; returns once the listener is closed.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid configuration, or the error of
    ///   binding the port.
    public func run() async throws {
        do {
            try configuration.validate()
        } catch {
            port.stopped("its configuration is invalid: \(error.message)")
            throw error
        }
        let router = Router(context: DeviceRequestContext.self)
        router.add(middleware: ForwardedForMiddleware(proxies: configuration.limits.trustedProxies))
        router.add(middleware: PercentDecodingMiddleware())
        router.post("/api/v1/devices/:uid/telemetry") { request, context in
            await self.deviceTelemetry(request, context: context)
        }
        router.post("/api/v1/:token/telemetry") { request, context in
            await self.thingsBoardTelemetry(request, context: context)
        }
        router.post("/api/v1/devices/auth") { request, context in
            await self.exchangeToken(request, context: context)
        }
        router.post("/api/v1/devices/auth/refresh") { request, context in
            await self.refreshToken(request, context: context)
        }
        // Every route takes POST only: other methods get 405 with `Allow: POST`.
        for path in [
            "/api/v1/devices/:uid/telemetry", "/api/v1/:token/telemetry", "/api/v1/devices/auth",
            "/api/v1/devices/auth/refresh",
        ] {
            for method: HTTPRequest.Method in [.get, .put, .delete, .patch] {
                router.on(RouterPath(path), method: method) { request, _ -> Response in
                    var response = IngestResponses.error(
                        IoTError(.invalidArgument, "\(request.method.rawValue) is not allowed here; use POST"),
                        status: .methodNotAllowed)
                    response.headers[.allow] = "POST"
                    return response
                }
            }
        }
        let tls = configuration.tls
        try await ListenerServer.serve(
            router: router, host: configuration.host, port: configuration.port, listening: port,
            announcement: "HTTP ingest listening", logger: logger,
            makeServer: {
                try ListenerServer.serverBuilder(tls: tls, limiter: limiter) { [self] configuration, responder in
                    TelemetryChannel(
                        base: HTTP1Channel(responder: responder, configuration: configuration), transport: self)
                }
            },
            onBound: { [gateway = self.gateway, name = self.name] channel in
                await Self.watchHandshakes(on: channel, tls: tls, gateway: gateway, transport: name)
            })
    }

    /// The server of a listener that upgrades to WebSocket through `webSocketRouter` (the WebSocket device
    /// listener); ``IoTListener/ListenerServer/webSocketUpgradeServer(tls:limiter:webSocketRouter:webSocket:)``.
    package static func webSocketUpgradeServer<Context: WebSocketRequestContext>(
        tls: ListenerTLS?, limiter: ConnectionLimiter, webSocketRouter: Router<Context>,
        webSocket: WebSocketServerConfiguration = .init()
    ) throws -> HTTPServerBuilder {
        try ListenerServer.webSocketUpgradeServer(
            tls: tls, limiter: limiter, webSocketRouter: webSocketRouter, webSocket: webSocket)
    }

    /// With TLS, counts every failed handshake on the listener's `server` channel as a rejected message of
    /// `transport`.
    static func watchHandshakes(
        on server: any Channel, tls: ListenerTLS?, gateway: any IngestGateway, transport: String
    ) async {
        guard tls != nil else { return }
        await TLSAcceptWatcher.install(on: server) { error in
            _ = gateway.submitBlocking([.refused(error, transport: transport)], onCacheMiss: .deferToAsync)
        }
    }

    /// The port the listener is bound to; waits until ``run()`` has bound it.
    ///
    /// With ``Configuration/port`` `0` this is the free port the kernel picked (tests use that).
    /// - Throws: when the listener failed to start or has stopped.
    public func listeningPort() async throws -> Int {
        try await port.wait()
    }
}
