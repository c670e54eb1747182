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
    let tokens: TokenAuthenticator
    let ingestor: Ingestor
    let parsers: ParserRegistry
    let ruleState: SQLiteRuleStateStore
    let statisticsStore: SQLiteStatisticsStore
    let rules: RuleEngine
    let statistics: StatisticsScheduler
    let http: HTTPIngestTransport
    let management: ManagementServer
    let retention: RetentionService
    let outbox: SQLiteOutbox
    let inbox: SQLiteInbox
    let notifications: NotificationRouter
    let dispatcher: NotificationDispatcher

    init(configuration: DaemonConfiguration, adminAPIKey: String?, prometheus: PrometheusCollectorRegistry, logger: Logger) throws {
        storage = try SQLiteStorage(configuration: configuration.storageConfiguration, logger: logger)
        let journal = try FileJournal(configuration: configuration.journalConfiguration, logger: logger)
        registry = SQLiteRegistryStore(storage: storage)
        points = SQLitePointStore(storage: storage, configuration: configuration.pointStoreConfiguration)
        tokens = TokenAuthenticator(credentials: SQLiteCredentialStore(storage: storage))
        ruleState = SQLiteRuleStateStore(storage: storage)
        statisticsStore = SQLiteStatisticsStore(storage: storage)
        let clock = SystemClock()
        let lua = LuaEngine()  // script parsers, conditions of joint rules and statistics calculations
        parsers = ParserRegistry()
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
        // Notifications: alarm events → router (templates, policies) → durable outbox → dispatcher → channels.
        outbox = SQLiteOutbox(storage: storage)
        inbox = SQLiteInbox(storage: storage)
        let settings = configuration.notifications ?? NotificationSettings()
        let registry = self.registry
        let dispatcher = NotificationDispatcher(
            configuration: settings.dispatcherConfiguration, outbox: outbox, notifiers: try settings.notifiers(inbox: inbox),
            clock: clock, tenants: { try await registry.tenants().map(\.id) }, logger: logger)
        self.dispatcher = dispatcher
        notifications = NotificationRouter(
            outbox: outbox, registry: registry, resolver: StaticRecipientResolver(groups: settings.groups ?? [:]), clock: clock,
            channelFormats: settings.formats, logger: logger, enqueued: { tenant in Task { await dispatcher.wake(tenant) } })
        ingestor = Ingestor(
            configuration: configuration.ingestorConfiguration, journal: journal, pointStore: points, registry: registry,
            clock: clock, observers: [rules], parsers: parsers, logger: logger)
        http = HTTPIngestTransport(
            configuration: configuration.httpConfiguration, ingestor: ingestor, authenticator: tokens, logger: logger)
        management = ManagementServer(
            configuration: configuration.managementConfiguration(adminAPIKey: adminAPIKey), registry: registry, points: points,
            tokens: tokens, ingestor: ingestor, prometheus: prometheus, rules: rules, statistics: statistics,
            ruleState: ruleState, statisticsStore: statisticsStore, notifications: notifications, outbox: outbox, inbox: inbox,
            dispatcher: dispatcher, logger: logger)
        retention = RetentionService(store: points, storage: storage, logger: logger)
    }

    /// The services in start order; a graceful shutdown stops them in reverse: listeners first, then the
    /// ingestor, which drains what was acknowledged into the store (the rule engine still sees it), then
    /// the statistics scheduler and the rule engine, which saves its state, and last the notification
    /// dispatcher (what the drain raised is still enqueued; what it cannot send stays in the outbox).
    var services: [any Service] { [dispatcher, rules, statistics, ingestor, retention, management, http] }

    /// Connects the rule engine's alarm events to the notification router.
    func connectNotifications() async {
        await rules.addHandler(notifications)
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
            for template in seed.notifications?.templates ?? [] { try await notifications.saveTemplate(template, tenant: id) }
            for policy in seed.notifications?.policies ?? [] { try await notifications.savePolicy(policy, tenant: id) }
        }
    }
}
