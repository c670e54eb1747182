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
    let parserCatalog: ParserCatalog
    let ruleState: SQLiteRuleStateStore
    let statisticsStore: SQLiteStatisticsStore
    let rules: RuleEngine
    let statistics: StatisticsScheduler
    let http: HTTPIngestTransport
    let coap: CoAPTransport?
    let webSocket: WebSocketTransport?
    let tcp: [TCPTransport]
    let modbus: ModbusTransport?
    let mqtt: MQTTClientManager
    /// Resources observed on CoAP devices; runs always (idle without observations), so that
    /// `/api/v1/coap/observations` works with or without a CoAP listener.
    let coapObservations: CoAPObserverManager
    let management: ManagementServer
    let retention: RetentionService
    /// Brokers that get device accounts (brokerAccounts.mosquitto); the management API's token issuer tells them.
    let provisioners: [any BrokerProvisioner]
    let logger: Logger
    let outbox: SQLiteOutbox
    let inbox: SQLiteInbox
    let notifications: NotificationRouter
    let dispatcher: NotificationDispatcher

    init(
        configuration: DaemonConfiguration, adminAPIKey: String?, prometheus: PrometheusCollectorRegistry,
        logger: Logger
    ) throws {
        // First, before any other descriptor is opened: numbers below 1024 for the Modbus connections
        // (libmodbus waits with select(); a gateway with thousands of connections has none left later).
        if let section = configuration.modbus {
            ModbusTransport.reserveDescriptors(
                configuration: configuration.modbusConfiguration, devices: section.devices ?? [])
        }
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
        parsers = ParserRegistry()
        parserCatalog = ParserCatalog(
            registry: parsers, factory: ScriptParserFactory(lua: lua), store: SQLiteScriptStore(storage: storage),
            clock: clock)
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
            configuration: settings.dispatcherConfiguration, outbox: outbox,
            notifiers: try settings.notifiers(inbox: inbox),
            clock: clock, tenants: { try await registry.tenants().map(\.id) }, logger: logger)
        self.dispatcher = dispatcher
        notifications = NotificationRouter(
            outbox: outbox, registry: registry, resolver: StaticRecipientResolver(groups: settings.groups ?? [:]),
            clock: clock,
            channelFormats: settings.formats, logger: logger,
            enqueued: { tenant in Task { await dispatcher.wake(tenant) } })
        let ingestor = Ingestor(
            configuration: configuration.ingestorConfiguration, journal: journal, pointStore: points,
            registry: registry,
            clock: clock, observers: [rules, liveFeed], parsers: parsers, logger: logger)
        self.ingestor = ingestor
        let gateway = DefaultIngestGateway(
            ingestor: ingestor, authenticator: tokens, configuration: configuration.gatewayConfiguration, logger: logger
        )
        http = HTTPIngestTransport(
            configuration: configuration.httpConfiguration, gateway: gateway, tokenService: tokens, logger: logger)
        coap = configuration.coapConfiguration.map {
            CoAPTransport(configuration: $0, gateway: gateway, logger: logger)
        }
        // A listener's parser is looked up by name for each message: script parsers are registered after
        // this (ParserCatalog.load) and can be replaced at run time.
        let parsers = self.parsers
        func parser(_ name: String?) -> any Parser { RegistryParser(name: name ?? "json", registry: parsers) }
        webSocket = configuration.webSocketConfiguration.map {
            WebSocketTransport(
                configuration: $0, gateway: gateway, sessions: sessions,
                parser: parser(configuration.websocket?.parser), logger: logger)
        }
        tcp = (configuration.tcp ?? []).map { t in
            TCPTransport(
                configuration: configuration.tcpConfiguration(t), gateway: gateway,
                sessions: sessions, parser: parser(t.parser), logger: logger)
        }
        if let section = configuration.modbus {
            modbus = try ModbusTransport(
                configuration: configuration.modbusConfiguration, devices: section.devices ?? [], gateway: gateway,
                clock: clock, logger: logger)
        } else {
            modbus = nil
        }
        mqtt = MQTTClientManager(
            configuration: configuration.mqttConfiguration, gateway: gateway, parsers: parsers, logger: logger)
        let coapObservations = CoAPObserverManager(
            configuration: configuration.coapObserverConfiguration, gateway: gateway, logger: logger)
        self.coapObservations = coapObservations
        provisioners = try Self.brokerProvisioners(configuration.brokerAccounts, logger: logger)
        var brokerAccess: BrokerAccessControl?
        if let accounts = configuration.brokerAccounts, let emqx = accounts.emqx {
            brokerAccess = BrokerAccessControl(
                policy: accounts.policy,
                configuration: .init(
                    ignoredUsernames: Set(emqx.ignoreUsernames ?? []),
                    ignoredUsernamePrefixes: emqx.ignoreUsernamePrefixes ?? []),
                authenticator: tokens, registry: registry, tokens: tokens, logger: logger)
        }
        management = ManagementServer(
            configuration: try configuration.managementConfiguration(adminAPIKey: adminAPIKey), registry: registry,
            points: points,
            tokens: provisioners.isEmpty ? tokens : ProvisioningTokenIssuer(tokens, provisioners: provisioners),
            ingestor: ingestor, prometheus: prometheus, rules: rules, statistics: statistics,
            ruleState: ruleState, statisticsStore: statisticsStore, parsers: parserCatalog,
            definitions: SQLiteDefinitionStore(storage: storage), modbus: modbus, brokerAccess: brokerAccess,
            mqttClients: mqtt, notifications: notifications, outbox: outbox, inbox: inbox,
            dispatcher: dispatcher, credentialManager: tokens, sessions: sessions, liveFeed: liveFeed,
            coapObservations: coapObservations, logger: logger)
        retention = RetentionService(store: points, storage: storage, logger: logger)
        self.logger = logger
    }

    /// The services in start order; a graceful shutdown stops them in reverse: listeners first, then the
    /// ingestor, which drains what was acknowledged into the store (the rule engine still sees it), then
    /// the statistics scheduler and the rule engine, which saves its state, and last the notification
    /// dispatcher (what the drain raised is still enqueued; what it cannot send stays in the outbox).
    var services: [any Service] {
        var services: [any Service] = [dispatcher, rules, statistics, ingestor, retention, management, http, mqtt]
        services.append(coapObservations)
        if let modbus { services.append(modbus) }
        if let webSocket { services.append(webSocket) }
        if let coap { services.append(coap) }
        return services + tcp
    }

    /// Loads the script parsers saved through the management API, then compiles and saves the ones
    /// `iotd.yaml` declares (the file wins over an API change to the same name at each start).
    func loadParsers(_ declared: [DaemonConfiguration.ScriptParserSeed]) async throws {
        for failure in try await parserCatalog.load() {
            logger.error(
                "a saved script parser no longer compiles; fix it with PUT /api/v1/parsers/\(failure.name)",
                metadata: ["error": "\(failure.error)"])
        }
        for seed in declared {
            do {
                try await parserCatalog.save(
                    ScriptSource(name: seed.name, language: seed.language, source: seed.source))
            } catch {
                throw ConfigurationError("parsers[\(seed.name)]: \(error.message)")
            }
        }
    }

    /// Adds again the alarm rules and statistics jobs added through the management API in earlier runs.
    func restoreDefinitions() async throws {
        for failure in try await management.restoreDefinitions() {
            logger.error(
                "a definition saved through the API could not be restored; it is set aside (iot_definitions_quarantined) and the start goes on",
                metadata: ["error": "\(failure)"])
        }
    }

    /// Creates the MQTT clients declared in the configuration (they connect once the ingestor is ready).
    func startMQTTClients(_ specs: [MQTTClientSpec]) async throws {
        for spec in specs {
            do {
                _ = try await mqtt.create(spec)
            } catch {
                throw ConfigurationError("mqtt.clients[\(spec.id)]: \(error.message)")
            }
        }
    }

    /// Creates the CoAP observations declared in the configuration (`coap.observations`); each replaces an
    /// observation of the same id restored from the management API (the file wins, as for rules).
    func startCoAPObservations(_ specs: [CoAPObservationSpec]) throws {
        for spec in specs {
            do {
                if coapObservations.report(id: spec.id) != nil { try coapObservations.remove(id: spec.id) }
                try coapObservations.create(spec)
            } catch {
                throw ConfigurationError("coap.observations[\(spec.id)]: \(error.message)")
            }
        }
    }

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
            for template in seed.notifications?.templates ?? [] {
                try await notifications.saveTemplate(template, tenant: id)
            }
            for policy in seed.notifications?.policies ?? [] { try await notifications.savePolicy(policy, tenant: id) }
        }
    }
}
