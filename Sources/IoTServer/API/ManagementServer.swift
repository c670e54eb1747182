import HTTPTypes
public import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
public import IoTCore
import IoTListener
import IoTRules
public import Logging
import NIOCore
public import Prometheus
public import ServiceLifecycle

/// The management listener: the REST API for tenants, products, devices, tokens, data, alarm rules,
/// alarms and statistics jobs, plus `/metrics`, `/healthz`, `/readyz` and `/openapi.yaml`. It runs on
/// its own port, apart from device ingest.
///
/// Every `/api` request needs the admin key (``Configuration/adminAPIKey``) as
/// `Authorization: Bearer <key>` or `X-API-Key: <key>`; without a configured key every `/api` request
/// is refused. Responses are JSON with the model's camelCase fields; errors are
/// `{"error": "<code name>", "message": "<what to do>"}` (400 validation, 401 key, 404 unknown tenant,
/// device or product, 409 conflict). The full description is `openapi.yaml`, served at `/openapi.yaml`.
///
/// `/metrics` renders `prometheus` in the Prometheus text format. For the ingest counters to appear
/// there, bootstrap swift-metrics once, in the executable, with the same registry.
///
/// Tenants, products, devices, tokens and data are always served; every other resource is one value in
/// `resources` (``ManagementRoutes``), built from the protocols it serves:
///
/// ```swift
/// let prometheus = PrometheusCollectorRegistry()
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))
/// let api = ManagementServer(
///     configuration: .init(port: 8081, adminAPIKey: adminKey),
///     registry: registry, points: points, tokens: TokenAuthenticator(credentials: credentials),
///     ingestor: ingestor, prometheus: prometheus,
///     resources: [RuleRoutes(engine: rules), AlarmRoutes(engine: rules, state: ruleState)],
///     logger: logger)
/// let group = ServiceGroup(services: [ingestor, rules, http, api], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// // curl -H "X-API-Key: $KEY" http://127.0.0.1:8081/api/v1/tenants/acme/devices
/// ```
public final class ManagementServer: Service {
    /// The configuration in force.
    public let configuration: Configuration
    /// What the resources share (the registry, the limits, the error shape).
    public let api: ManagementAPI
    /// The resources served besides tenants, products, devices, tokens and data.
    public let resources: [any ManagementRoutes]
    let prometheus: PrometheusCollectorRegistry?
    let brokerAccess: BrokerAccessControl?
    let liveFeed: LiveFeed?
    let logger: Logger
    let port = ListeningPort(component: "management listener")

    /// Creates the server; nothing is bound until ``run()``.
    ///
    /// - Parameters:
    ///   - registry: tenants, products and devices (`/api/v1/tenants/…`).
    ///   - points: the stored points that `…/devices/{uid}/data` and `…/series` read.
    ///   - tokens: issues and revokes the device tokens of `…/devices/{uid}/tokens`.
    ///   - ingestor: invalidated after tenant, device and product changes, and asked by `/readyz`; `nil` when
    ///     this process does not ingest.
    ///   - prometheus: rendered by `/metrics`; `nil` answers `/metrics` with 404.
    ///   - resources: the other resources to serve (``RuleRoutes``, ``ModbusRoutes`` …, or your own), each
    ///     once; a built-in resource left out answers 404 saying it is not configured.
    ///   - brokerAccess: answers EMQX's HTTP authenticator and authorizer at `/broker/v1/emqx/auth` and
    ///     `/broker/v1/emqx/acl` (guarded by ``Configuration/brokerAuthKey``, not the admin key); `nil`
    ///     answers them with 404.
    ///   - identity: users, sign-in (`/api/v1/auth/…`), roles, API keys and the audit log; `nil` leaves the
    ///     bootstrap admin key as the only credential (and those routes answer 404).
    ///   - activity: the devices' last activity and online status, shown by the device listing and
    ///     `/api/v1/tenants/{tenant}/overview` (give the same value to the ingestor as an observer); `nil` leaves
    ///     them out.
    public init(
        configuration: Configuration = .init(),
        registry: any RegistryStore,
        points: any PointStore,
        tokens: any TokenIssuer,
        ingestor: Ingestor?,
        prometheus: PrometheusCollectorRegistry?,
        resources: [any ManagementRoutes] = [],
        brokerAccess: BrokerAccessControl? = nil,
        identity: IdentityService? = nil,
        activity: DeviceActivity? = nil,
        logger: Logger = Logger(label: "iot.api")
    ) {
        self.configuration = configuration
        self.api = ManagementAPI(
            configuration: configuration, registry: registry, logger: logger, clock: SystemClock(), points: points,
            tokens: tokens, ingestor: ingestor,
            parsers: resources.lazy.compactMap { ($0 as? ParserRoutes)?.catalog }.first,
            credentials: resources.lazy.compactMap { ($0 as? CredentialRoutes)?.manager }.first,
            activity: activity, identity: identity, resources: resources)
        self.resources = resources
        self.prometheus = prometheus
        self.brokerAccess = brokerAccess
        self.liveFeed = resources.lazy.compactMap { ($0 as? LiveFeedRoutes)?.feed }.first
        self.logger = logger
    }

    /// Serves until graceful shutdown or cancellation; returns once the listener is closed.
    ///
    /// - Throws: the error of binding the port.
    public func run() async throws {
        if configuration.adminAPIKey?.isEmpty ?? true, api.identity == nil {
            logger.warning("no admin API key is configured: every /api request is refused with 401")
        }
        let configuration = self.configuration
        try await ListenerServer.serve(
            router: makeRouter(), host: configuration.host, port: configuration.port, listening: port,
            announcement: "management API listening", logger: logger,
            makeServer: {
                try configuration.limits.validate()
                return try ListenerServer.webSocketUpgradeServer(
                    tls: configuration.tls,
                    limiter: ConnectionLimiter(limits: configuration.limits, listener: "management"),
                    webSocketRouter: makeWebSocketRouter())
            })
    }

    /// The port the listener is bound to; waits until ``run()`` has bound it.
    ///
    /// With ``Configuration/port`` `0` this is the free port the kernel picked (tests use that).
    /// - Throws: when the listener failed to start or has stopped.
    public func listeningPort() async throws -> Int {
        try await port.wait()
    }

    /// The management API's router: what ``run()`` serves, for an application that serves it itself, and for
    /// tests that drive it without a socket (HummingbirdTesting's `.router` mode).
    ///
    /// Each resource's routes are one Hummingbird `RouteCollection`: tenants, products, devices, tokens and
    /// data, then each of ``resources``. The operational endpoints and the broker's authenticator (its own key) are on
    /// the router; every `/api` collection is in one group whose middleware checks the admin key. The key is
    /// attached to the routes themselves, never to a test on the raw path: `//api/…`, `/api//v1/…` or a
    /// trailing slash reach the same route and so the same check.
    public func makeRouter() -> Router<ManagementContext> {
        let router = Router(context: ManagementContext.self)
        router.add(middleware: ForwardedForMiddleware(proxies: configuration.limits.trustedProxies))
        // Requests by route, method and status, and their time: `hb_requests`, the histogram
        // `http_server_request_duration` (Hummingbird's names, made valid for Prometheus by
        // `IoTPlatform.metricsFactory`).
        router.add(middleware: MetricsMiddleware())
        router.addRoutes(operationalRoutes())
        router.addRoutes(consoleRoutes())
        router.addRoutes(brokerAuthRoutes())
        if let identity = self.api.identity {
            router.group().add(middleware: PercentDecodingMiddleware())
                .addRoutes(self.api.publicIdentityRoutes(identity))
        }
        var api = router.group()
            .add(middleware: AuthenticationMiddleware(adminKey: configuration.adminAPIKey, identity: self.api.identity))
            .add(middleware: PercentDecodingMiddleware())
        if let identity = self.api.identity {
            api = api.add(middleware: AuditMiddleware(identity: identity))
            api.addRoutes(self.api.selfIdentityRoutes(identity))
            api.addRoutes(self.api.identityAdministrationRoutes(identity))
        }
        api.addRoutes(self.api.tenantRoutes())
        api.addRoutes(self.api.productRoutes())
        api.addRoutes(self.api.deviceRoutes())
        api.addRoutes(self.api.bulkDeviceRoutes())
        api.addRoutes(self.api.tokenRoutes())
        api.addRoutes(self.api.dataRoutes())
        api.addRoutes(self.api.exportRoutes())
        for resource in resources {
            api.addRoutes(resource.routes(self.api))
        }
        for missing in OptionalResource.allCases where !missing.isServed(by: resources) {
            for path in missing.paths {
                for method: HTTPRequest.Method in [.get, .post, .put, .delete, .patch] {
                    for route in [path, path + "/**"] {
                        api.on(RouterPath(route), method: method) { _, _ -> Response in
                            throw APIError.notFound(missing.message)
                        }
                    }
                }
            }
        }
        // Any other path under /api is in the group too: 401 without the key, 404 with it, so a caller without
        // the key learns nothing about which routes exist.
        for method: HTTPRequest.Method in [.get, .post, .put, .delete, .patch, .head, .options] {
            api.on("/api/**", method: method) { _, _ -> Response in
                throw APIError.notFound("no such management API route; the routes are described at /openapi.yaml")
            }
        }
        // A route's path asked with a method it does not take: 405 with `Allow` (after the key check, on /api).
        var methodsByPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in router.routes where !route.path.description.contains("**") {
            methodsByPath[route.path.description, default: (route.path, [])].methods.insert(route.method)
        }
        for (text, route) in methodsByPath {
            let allow = route.methods.filter { $0 != .head }.map(\.rawValue).sorted().joined(separator: ", ")
            let refuse: @Sendable (Request, ManagementContext) async throws -> Response = { request, _ in
                var response = JSONOutput.error(
                    status: .methodNotAllowed, code: IoTError.Code.invalidArgument.name,
                    message: "\(request.method.rawValue) is not allowed on this route; use \(allow)")
                response.headers[.allow] = allow
                return response
            }
            for method: HTTPRequest.Method in [.get, .post, .put, .delete, .patch] where !route.methods.contains(method)
            {
                if text.hasPrefix("/api") {
                    api.on(route.path, method: method, use: refuse)
                } else {
                    router.on(route.path, method: method, use: refuse)
                }
            }
        }
        return router
    }
}
