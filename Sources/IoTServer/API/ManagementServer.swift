import HTTPTypes
public import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
public import IoTCore
import IoTListener
public import IoTRules
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
/// there, bootstrap swift-metrics once, in the executable, with the same registry:
///
/// ```swift
/// let prometheus = PrometheusCollectorRegistry()
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))
/// let api = ManagementServer(
///     configuration: .init(port: 8081, adminAPIKey: adminKey),
///     registry: registry, points: points, tokens: TokenAuthenticator(credentials: credentials),
///     ingestor: ingestor, prometheus: prometheus, logger: logger)
/// let group = ServiceGroup(services: [ingestor, http, api], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// // curl -H "X-API-Key: $KEY" http://127.0.0.1:8081/api/v1/tenants/acme/devices
/// ```
public final class ManagementServer: Service {
    /// The configuration in force.
    public let configuration: Configuration
    let registry: any RegistryStore
    let points: any PointStore
    let tokens: any TokenIssuer
    let ingestor: Ingestor?
    let prometheus: PrometheusCollectorRegistry?
    let rules: RuleEngine?
    let statistics: StatisticsScheduler?
    let ruleState: (any RuleStateStore)?
    let statisticsStore: (any StatisticsStore)?
    let parsers: ParserCatalog?
    let definitions: (any DefinitionStore)?
    let modbus: (any ModbusAdministration)?
    let brokerAccess: BrokerAccessControl?
    let mqttClients: (any MQTTClientAdministration)?
    let notifications: NotificationRouter?
    let outbox: (any Outbox)?
    let inbox: (any Inbox)?
    let dispatcher: NotificationDispatcher?
    let credentialManager: (any CredentialManager)?
    let sessions: DeviceSessions?
    let liveFeed: LiveFeed?
    let coapObservations: (any CoAPObservationAdministration)?
    let logger: Logger
    let clock: any IoTClock = SystemClock()
    let port = ListeningPort(component: "management listener")

    /// Creates the server; nothing is bound until ``run()``.
    ///
    /// - Parameters:
    ///   - ingestor: invalidated after device and product changes, and asked by `/readyz`; `nil` when
    ///     this process does not ingest.
    ///   - prometheus: rendered by `/metrics`; `nil` answers `/metrics` with 404.
    ///   - rules: serves `…/rules` (add, replace, remove at run time) and acknowledges and clears
    ///     alarms; `nil` answers those with 404.
    ///   - statistics: serves `…/statistics/jobs`; `nil` answers it with 404.
    ///   - ruleState: lists and reads alarms (`GET …/alarms`); `nil` answers it with 404.
    ///   - statisticsStore: lists a job's results (`GET …/statistics/jobs/{id}/results`); `nil`
    ///     answers it with 404.
    ///   - definitions: keeps the rules and statistics jobs added through the API, so that
    ///     ``restoreDefinitions()`` adds them again after a restart; `nil` keeps them in memory only.
    ///   - parsers: serves `/api/v1/parsers` (script parsers added, replaced and removed at run time);
    ///     `nil` answers it with 404. The catalog's ``IoTCore/ParserFactory`` compiles the scripts, so
    ///     this module links no interpreter.
    ///   - modbus: lists polled Modbus devices and writes their registers and coils
    ///     (`…/modbus/devices`; IoTModbus' `ModbusTransport` implements it); `nil` answers those with 404.
    ///   - brokerAccess: answers EMQX's HTTP authenticator and authorizer at `/broker/v1/emqx/auth` and
    ///     `/broker/v1/emqx/acl` (guarded by ``Configuration/brokerAuthKey``); `nil` answers them with 404.
    ///   - mqttClients: serves `/api/v1/mqtt/clients` (IoTMQTT's `MQTTClientManager` implements it); `nil`
    ///     answers it with 404.
    ///   - credentialManager: serves `…/devices/{uid}/credentials` (passwords, rotation, revocation);
    ///     `nil` answers it with 404.
    ///   - sessions: the live device connections that `…/devices/{uid}/downlink` sends to; `nil`
    ///     answers it with 404.
    ///   - liveFeed: serves the WebSocket `…/tenants/{tenant}/live`; `nil` answers it with 404.
    ///   - coapObservations: serves `/api/v1/coap/observations` (resources observed on CoAP devices; created
    ///     ones are kept in `definitions`; IoTCoAP's `CoAPObserverManager` implements it); `nil` answers it
    ///     with 404.
    public init(
        configuration: Configuration = .init(),
        registry: any RegistryStore,
        points: any PointStore,
        tokens: any TokenIssuer,
        ingestor: Ingestor?,
        prometheus: PrometheusCollectorRegistry?,
        rules: RuleEngine? = nil,
        statistics: StatisticsScheduler? = nil,
        ruleState: (any RuleStateStore)? = nil,
        statisticsStore: (any StatisticsStore)? = nil,
        parsers: ParserCatalog? = nil,
        definitions: (any DefinitionStore)? = nil,
        modbus: (any ModbusAdministration)? = nil,
        brokerAccess: BrokerAccessControl? = nil,
        mqttClients: (any MQTTClientAdministration)? = nil,
        notifications: NotificationRouter? = nil,
        outbox: (any Outbox)? = nil,
        inbox: (any Inbox)? = nil,
        dispatcher: NotificationDispatcher? = nil,
        credentialManager: (any CredentialManager)? = nil,
        sessions: DeviceSessions? = nil,
        liveFeed: LiveFeed? = nil,
        coapObservations: (any CoAPObservationAdministration)? = nil,
        logger: Logger = Logger(label: "iot.api")
    ) {
        self.configuration = configuration
        self.registry = registry
        self.points = points
        self.tokens = tokens
        self.ingestor = ingestor
        self.prometheus = prometheus
        self.rules = rules
        self.statistics = statistics
        self.ruleState = ruleState
        self.statisticsStore = statisticsStore
        self.parsers = parsers
        self.definitions = definitions
        self.modbus = modbus
        self.brokerAccess = brokerAccess
        self.mqttClients = mqttClients
        self.notifications = notifications
        self.outbox = outbox
        self.inbox = inbox
        self.dispatcher = dispatcher
        self.credentialManager = credentialManager
        self.sessions = sessions
        self.liveFeed = liveFeed
        self.coapObservations = coapObservations
        self.logger = logger
    }

    /// Serves until graceful shutdown or cancellation; returns once the listener is closed.
    ///
    /// - Throws: the error of binding the port.
    public func run() async throws {
        if configuration.adminAPIKey?.isEmpty ?? true {
            logger.warning("no admin API key is configured: every /api request is refused with 401")
        }
        let port = self.port
        let logger = self.logger
        let host = configuration.host
        let server: HTTPServerBuilder
        do {
            try configuration.limits.validate()
            server = try ListenerServer.webSocketUpgradeServer(
                tls: configuration.tls,
                limiter: ConnectionLimiter(limits: configuration.limits, listener: "management"),
                webSocketRouter: makeWebSocketRouter())
        } catch {
            port.stopped("its TLS or limits configuration is invalid: \(error)")
            throw error
        }
        let app = Application(
            router: makeRouter(),
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port)),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                logger.info("management API listening", metadata: ["host": "\(host)", "port": "\(bound)"])
                port.bound(bound)
            },
            logger: logger)
        do {
            try await app.run()
        } catch {
            port.stopped("it failed: \(error)")
            throw error
        }
        port.stopped("it has stopped")
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
    /// Each resource's routes are one Hummingbird `RouteCollection` (tenants, products, devices, tokens,
    /// data, rules, alarms, statistics, parsers, Modbus, MQTT clients, notifications, credentials, the live
    /// feed, CoAP observations). The operational endpoints and the broker's authenticator (its own key) are on
    /// the router; every `/api` collection is in one group whose middleware checks the admin key. The key is
    /// attached to the routes themselves, never to a test on the raw path: `//api/…`, `/api//v1/…` or a
    /// trailing slash reach the same route and so the same check.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.addRoutes(operationalRoutes())
        router.addRoutes(brokerAuthRoutes())
        let api = router.group()
            .add(middleware: AdminKeyMiddleware(key: configuration.adminAPIKey))
            .add(middleware: PercentDecodingMiddleware())
        api.addRoutes(tenantRoutes())
        api.addRoutes(productRoutes())
        api.addRoutes(deviceRoutes())
        api.addRoutes(tokenRoutes())
        api.addRoutes(dataRoutes())
        api.addRoutes(ruleRoutes())
        api.addRoutes(alarmRoutes())
        api.addRoutes(statisticsRoutes())
        api.addRoutes(parserRoutes())
        api.addRoutes(modbusRoutes())
        api.addRoutes(mqttClientRoutes())
        api.addRoutes(notificationRoutes())
        api.addRoutes(credentialRoutes())
        api.addRoutes(liveRoutes())
        api.addRoutes(coapObservationRoutes())
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
            let refuse: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
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
