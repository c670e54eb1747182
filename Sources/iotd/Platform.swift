import IoTCore
import IoTProtocols
import IoTRules
import IoTScripting
import IoTServer
import IoTStorage
import Logging
import Prometheus
import ServiceLifecycle

/// The components of one `iotd`, built from its configuration: what an integrator would write by hand.
struct Platform {
    let storage: SQLiteStorage
    let registry: SQLiteRegistryStore
    let points: SQLitePointStore
    /// Device authentication (tokens, passwords, token exchange, attempt limits) and the live sessions that
    /// revocation closes.
    let tokens: DeviceAuthService
    let sessions: DeviceSessions
    let liveFeed: LiveFeed
    let ingestor: Ingestor
    let parsers: ParserRegistry
    let ruleState: SQLiteRuleStateStore
    let statisticsStore: SQLiteStatisticsStore
    let rules: RuleEngine
    let statistics: StatisticsScheduler
    let http: HTTPIngestTransport
    let webSocket: WebSocketTransport?
    let tcp: [TCPTransport]
    let management: ManagementServer
    let retention: RetentionService

    init(configuration: DaemonConfiguration, adminAPIKey: String?, prometheus: PrometheusCollectorRegistry, logger: Logger) throws {
        storage = try SQLiteStorage(configuration: configuration.storageConfiguration, logger: logger)
        let journal = try FileJournal(configuration: configuration.journalConfiguration, logger: logger)
        registry = SQLiteRegistryStore(storage: storage)
        points = SQLitePointStore(storage: storage, configuration: configuration.pointStoreConfiguration)
        let sessions = DeviceSessions()
        self.sessions = sessions
        let liveFeed = LiveFeed()
        self.liveFeed = liveFeed
        let tokens = DeviceAuthService(
            credentials: SQLiteCredentialStore(storage: storage), sessions: sessions,
            configuration: configuration.authConfiguration, logger: logger)
        self.tokens = tokens
        ruleState = SQLiteRuleStateStore(storage: storage)
        statisticsStore = SQLiteStatisticsStore(storage: storage)
        let clock = SystemClock()
        let lua = LuaEngine()  // script parsers, conditions of joint rules and statistics calculations
        let parsers = ParserRegistry()
        self.parsers = parsers
        var javascript: JavaScriptEngine?
        for seed in configuration.parsers ?? [] {
            switch seed.language {
            case "lua":
                parsers.register(try LuaScriptParser(source: seed.source, name: seed.name, engine: lua))
            default:
                if javascript == nil { javascript = try JavaScriptEngine() }
                parsers.register(try JavaScriptParser(source: seed.source, name: seed.name, engine: javascript!))
            }
        }
        rules = RuleEngine(
            clock: clock, stateStore: ruleState, pointStore: points, registry: registry, scriptEngines: [lua],
            logger: logger)
        statistics = StatisticsScheduler(
            clock: clock, pointStore: points, statisticsStore: statisticsStore, scriptEngines: [lua], logger: logger)
        let ingestor = Ingestor(
            configuration: configuration.ingestorConfiguration, journal: journal, pointStore: points, registry: registry,
            clock: clock, observers: [rules, liveFeed], parsers: parsers, logger: logger)
        self.ingestor = ingestor
        http = HTTPIngestTransport(
            configuration: configuration.httpConfiguration, ingestor: ingestor, authenticator: tokens, logger: logger)
        func parser(_ name: String?, _ key: String) throws -> any Parser {
            let name = name ?? "json"
            guard let found = parsers.parser(named: name) else {
                throw ConfigurationError("\(key).parser: '\(name)' is not a parser; use json, senml or one declared under parsers")
            }
            return found
        }
        webSocket = try configuration.webSocketConfiguration.map {
            WebSocketTransport(
                configuration: $0, ingestor: ingestor, authenticator: tokens, sessions: sessions,
                parser: try parser(configuration.websocket?.parser, "websocket"), logger: logger)
        }
        tcp = try (configuration.tcp ?? []).enumerated().map { i, t in
            TCPTransport(
                configuration: configuration.tcpConfiguration(t), ingestor: ingestor, authenticator: tokens,
                sessions: sessions, parser: try parser(t.parser, "tcp[\(i)]"), logger: logger)
        }
        management = ManagementServer(
            configuration: configuration.managementConfiguration(adminAPIKey: adminAPIKey), registry: registry, points: points,
            tokens: tokens, ingestor: ingestor, prometheus: prometheus, rules: rules, statistics: statistics,
            ruleState: ruleState, statisticsStore: statisticsStore, credentialManager: tokens, sessions: sessions,
            liveFeed: liveFeed, logger: logger)
        retention = RetentionService(store: points, storage: storage, logger: logger)
    }

    /// The services in start order; a graceful shutdown stops them in reverse: listeners first, then the
    /// ingestor, which drains what was acknowledged into the store (the rule engine still sees it), then
    /// the statistics scheduler and the rule engine, which saves its state.
    var services: [any Service] {
        [rules, statistics, ingestor, retention, management, http] + (webSocket.map { [$0] } ?? []) + tcp
    }

    /// Creates or updates the tenants, products and devices declared in the configuration.
    func seed(_ tenants: [DaemonConfiguration.TenantSeed]) async throws {
        for seed in tenants {
            let id = TenantID(seed.id)
            var policy = IngestPolicy()
            if let u = seed.unknownDevices, u.hasPrefix("register:") {
                policy.unknownDevices = .register(product: ProductID(String(u.dropFirst("register:".count))))
            }
            if let s = seed.unknownSignals { policy.unknownSignals = s }
            try await registry.saveTenant(Tenant(id: id, name: seed.name, policy: policy))
            for product in seed.products ?? [] { try await registry.saveProduct(.tenant(id), product) }
            for device in seed.devices ?? [] { try await registry.saveDevice(.tenant(id), device) }
            for rule in seed.rules ?? [] { try await rules.add(rule, tenant: id) }
            for job in seed.statistics ?? [] { try await statistics.add(job, tenant: id) }
        }
    }
}
