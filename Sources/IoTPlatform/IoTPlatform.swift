import Foundation
public import IoTCluster
public import IoTCore
public import IoTPostgres
public import IoTProtocols
public import IoTRules
import IoTScripting
public import IoTServer
public import IoTStorage
public import Logging
public import Prometheus
public import ServiceLifecycle
import Synchronization

/// The whole platform, built from one ``PlatformConfiguration``: stores, the ingest pipeline and its front
/// door, every configured transport, rules, statistics, notifications and the management API. What `iotd`
/// runs, and what an integrator runs with one layer replaced or added.
///
/// ```swift
/// let configuration = try PlatformConfiguration(yaml: "tenants: [{ id: lab }]")
/// var layers = IoTPlatform.Layers()
/// layers.pointStore = MyPointStore()                               // replaces the SQLite point store
/// layers.transports = [{ gateway in MyTransport(gateway: gateway) }]  // beside HTTP, MQTT, CoAP, …
/// layers.notifiers = [PagerNotifier(channel: "pager")]              // a channel policies can name
/// let platform = try IoTPlatform(configuration: configuration, layers: layers)
/// try await ServiceGroup(services: [platform], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
///
/// As a `Service`, ``run()`` first runs the start-up order (``prepare()``: saved and declared script
/// parsers, the rules and jobs saved through the API, notification routing, the configuration's tenants,
/// MQTT clients and CoAP observations), then runs every component until graceful shutdown, which stops
/// them in reverse order: listeners first, then the ingestor, which drains what was acknowledged into the
/// store (the journal replays the rest at the next start), then rules, statistics and notifications.
public final class IoTPlatform: Service, Sendable {
    /// The SDK's release, as `iotd --version` prints it and backup manifests record it.
    public static let version = "0.2.0"

    /// The layers an integrator replaces or adds; everything else is built from the configuration.
    public struct Layers: Sendable {
        /// Replaces the SQLite point store: ingest, rules, statistics and the API read and write points
        /// through it. The SQLite retention service then does not run (retention is the store's business).
        public var pointStore: (any PointStore)?
        /// Transports run beside the configured ones, each built with the platform's front door (the
        /// ``IngestGateway`` every built-in transport submits to). Started after the built-in listeners,
        /// stopped before them.
        public var transports: [@Sendable (any IngestGateway) throws -> any Transport]
        /// Notification channels beside the configured ones; a routing policy names them by
        /// ``Notifier/channel``.
        public var notifiers: [any Notifier]

        /// Nothing replaced, nothing added.
        public init(
            pointStore: (any PointStore)? = nil,
            transports: [@Sendable (any IngestGateway) throws -> any Transport] = [],
            notifiers: [any Notifier] = []
        ) {
            self.pointStore = pointStore
            self.transports = transports
            self.notifiers = notifiers
        }
    }

    /// The configuration it was built from.
    public let configuration: PlatformConfiguration
    /// The SQLite files (registry, credentials, scripts, definitions, rule state, outbox; points unless
    /// replaced), unless `storage.postgres` puts the stores in PostgreSQL.
    public let storage: SQLiteStorage
    /// The PostgreSQL database of every store, with `storage.postgres`; `nil`: SQLite.
    public let postgres: PostgresStorage?
    /// Tenants, products and devices.
    public let registry: any RegistryStore
    /// Where points are written and read: the SQLite point store or ``Layers/pointStore``.
    public let points: any PointStore
    /// Device authentication (tokens, passwords, token exchange, attempt limits).
    public let deviceAuth: DeviceAuthService
    /// The live sessions that revocation closes.
    public let sessions: DeviceSessions
    /// Live points for the API's streams.
    public let liveFeed: LiveFeed
    /// With `storage.postgres`: the points other instances commit, for this instance's live feed.
    let liveRelay: PostgresLiveRelay?
    /// With `storage.postgres`: downlink to devices connected to other instances.
    let downlinkRelay: PostgresDownlinkRelay?
    /// With PostgreSQL and Redis: carries points to the instance that evaluates their device's rules.
    let ruleRelay: PostgresRuleRelay?
    /// With Redis: hands the live instances to what is placed by them (rules, Modbus devices, CoAP observations).
    let membership: MembershipFollower?
    /// With PostgreSQL: requests to the other instances (downlink, Modbus writes).
    let instanceCalls: PostgresInstanceCalls?
    /// With Redis: the Modbus devices and CoAP observations of the whole cluster, each run by one instance.
    let placedModbus: PlacedModbus?
    let placedCoAP: PlacedCoAPObservations?
    /// With PostgreSQL: applies the rules other instances change through their API.
    let definitionFollower: DefinitionFollower?
    /// The ingest pipeline: journal, queue, store.
    public let ingestor: Ingestor
    /// The front door every transport submits to.
    public let gateway: DefaultIngestGateway
    /// Parsers by name (built-in and script parsers).
    public let parsers: ParserRegistry
    /// Script parsers: compiled, saved, reloaded.
    public let parserCatalog: ParserCatalog
    /// Alarm rules.
    public let rules: RuleEngine
    /// Statistics jobs.
    public let statistics: StatisticsScheduler
    /// Scheduled reports (`/api/v1/tenants/{tenant}/reports`), sent through the notification outbox.
    public let reports: ReportScheduler
    /// Notification routing: alarm events → templates and policies → outbox.
    public let notifications: NotificationRouter
    /// Notification delivery: outbox → channels.
    public let dispatcher: NotificationDispatcher
    /// The HTTP device listener.
    public let http: HTTPIngestTransport
    /// The CoAP listener, with `coap:`.
    public let coap: CoAPTransport?
    /// The WebSocket listener, with `websocket:`.
    public let webSocket: WebSocketTransport?
    /// The raw TCP listeners of `tcp:`.
    public let tcp: [TCPTransport]
    /// The Modbus poller: the one of `modbus:`, or one made when the first device is added.
    public let modbus: ModbusOnDemand
    /// The MQTT clients (from the configuration and the API).
    public let mqtt: MQTTClientManager
    /// With `cluster.redis`: the instances share their MQTT clients through Redis (placement, failover); the
    /// management API administers the clients through it. `nil`: this instance runs alone.
    public let cluster: ClusterCoordinator?
    /// Resources observed on CoAP devices; runs always (idle without observations).
    public let coapObservations: CoAPObserverManager
    /// The transports of ``Layers/transports``.
    public let addedTransports: [any Transport]
    /// The management API.
    public let management: ManagementServer
    /// Users, sign-in, API keys and the audit log of the management API.
    public let identity: IdentityService

    let retention: RetentionService?
    /// Scheduled and continuous backups (`backup:`), when configured.
    public let backup: BackupService?
    /// The forwarding of committed points to InfluxDB (`exports.influxdb`), when configured.
    public let influxDB: InfluxDBSink?
    /// When each device was last heard from (`devices:`), shown by the API's device listing.
    public let activity: DeviceActivity
    let ruleState: any RuleStateStore
    let logger: Logger
    private let prepared = Mutex(false)
    /// The tenants of the file last applied (at start, or by ``reload(_:)``): their rules and jobs are removed
    /// by a reload whose file no longer declares them.
    let declaredTenants: Mutex<[PlatformConfiguration.TenantSeed]>

    /// Builds every component; nothing runs and nothing listens yet.
    ///
    /// - Parameters:
    ///   - configuration: a configuration that passed ``PlatformConfiguration/validate()`` (``PlatformConfiguration/load(path:environment:)``
    ///     validates).
    ///   - layers: what to replace or add.
    ///   - prometheus: what `/metrics` shows; bootstrap swift-metrics with a `PrometheusMetricsFactory` on it
    ///     for the platform's own metrics to appear there.
    ///   - logger: the platform's logger.
    /// - Throws: ``ConfigurationError`` or `IoTError` when a file cannot be opened or a component refuses its
    ///   settings.
    public init(
        configuration: PlatformConfiguration, layers: Layers = Layers(),
        prometheus: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), logger: Logger = Logger(label: "iot")
    ) throws {
        self.configuration = configuration
        declaredTenants = Mutex(configuration.tenants)
        self.logger = logger
        // First, before any other descriptor is opened: numbers below 1024 for the Modbus connections
        // (libmodbus waits with select(); a gateway with thousands of connections has none left later).
        if let modbus = configuration.modbus {
            ModbusTransport.reserveDescriptors(configuration: modbus.poller, devices: modbus.devices)
        }
        var storageConfiguration = configuration.storage.sqlite
        storageConfiguration.directory = configuration.dataDirectory
        storage = try SQLiteStorage(configuration: storageConfiguration, logger: logger)
        var journalConfiguration = configuration.journal
        journalConfiguration.directory = configuration.dataDirectory + "/journal"
        let journal = try FileJournal(configuration: journalConfiguration, logger: logger)
        // Before the ingestor trims anything: with continuous backup the journal keeps what is not shipped.
        backup = try configuration.backup.map {
            try BackupService(
                configuration: $0, dataDirectory: configuration.dataDirectory, journal: journal,
                version: Self.version, logger: logger)
        }
        let stores =
            try configuration.storage.postgres.map {
                try PlatformStores.postgres($0, configuration: configuration, logger: logger)
            } ?? PlatformStores.sqlite(storage, configuration: configuration)
        postgres = stores.postgres
        registry = stores.registry
        if let custom = layers.pointStore {
            points = custom
            retention = nil
        } else {
            points = stores.points
            let sqlite = storage
            if let sqlitePoints = stores.sqlitePoints {
                retention = RetentionService(store: sqlitePoints, storage: sqlite, logger: logger)
            } else if let keep = configuration.storage.points.retention {
                // PostgreSQL: the registry's tenants. Every instance runs it; a delete another one made is a no-op.
                let registry = stores.registry
                retention = RetentionService(
                    store: stores.points, retention: keep, tenants: { try await registry.tenants().map(\.id) },
                    logger: logger)
            } else {
                retention = nil
            }
        }
        let sessions = DeviceSessions()
        self.sessions = sessions
        liveFeed = LiveFeed()
        deviceAuth = DeviceAuthService(
            credentials: stores.credentials, sessions: sessions, configuration: configuration.auth,
            logger: logger)
        ruleState = stores.ruleState
        let statisticsStore = stores.statistics
        let clock = SystemClock()
        // Script parsers, conditions of joint rules and statistics calculations: Lua, JavaScript and Python (the
        // worker processes of each start with its first script).
        let lua = LuaEngine()
        let scripts = ScriptParserFactory(lua: lua)
        let engines: [any ScriptEngine] = [lua, scripts.javascriptOnFirstUse, scripts.pythonOnFirstUse]
        parsers = ParserRegistry()
        parserCatalog = ParserCatalog(
            registry: parsers, factory: scripts, store: stores.scripts, clock: clock)
        rules = RuleEngine(
            clock: clock, stateStore: ruleState, pointStore: points, registry: registry, scriptEngines: engines,
            logger: logger)
        statistics = StatisticsScheduler(
            clock: clock, pointStore: points, statisticsStore: statisticsStore, scriptEngines: engines, logger: logger)
        // Users, roles and departments: also the directory that notification policies name recipients from.
        let identityStore = stores.identity
        // Notifications: alarm events → router (templates, policies) → durable outbox → dispatcher → channels.
        let outbox = stores.outbox
        let inbox = stores.inbox
        let settings = configuration.notifications
        let registry = self.registry
        let dispatcher = NotificationDispatcher(
            configuration: settings.dispatcherConfiguration, outbox: outbox,
            notifiers: try settings.notifiers(inbox: inbox) + layers.notifiers,
            clock: clock, tenants: { try await registry.tenants().map(\.id) }, logger: logger)
        self.dispatcher = dispatcher
        // A channel added in code gets subject and body, as email and webhooks do.
        var formats = settings.formats
        for notifier in layers.notifiers where formats[notifier.channel] == nil {
            formats[notifier.channel] = .subjectAndBody
        }
        notifications = NotificationRouter(
            outbox: outbox, registry: registry,
            resolver: DirectoryRecipientResolver(
                store: identityStore,
                emailChannels: Set(settings.allChannels.filter { $0.type == "email" }.map(\.name)),
                phoneChannels: Set(settings.allChannels.filter { ["sms", "voice"].contains($0.type) }.map(\.name)),
                fallback: StaticRecipientResolver(groups: settings.groups ?? [:])),
            clock: clock, channelFormats: formats, logger: logger,
            enqueued: { tenant in Task { await dispatcher.wake(tenant) } })
        influxDB = try configuration.exports.influxdb.map {
            try InfluxDBSink(configuration: $0, registry: registry, logger: logger)
        }
        activity = DeviceActivity(configuration: configuration.devices, points: points, clock: clock)
        var observers: [any PointObserver] = [rules, liveFeed, activity]
        if let influxDB { observers.append(influxDB) }
        let sharedCalls: PostgresInstanceCalls?
        if let postgres {
            // Several instances on one database: a dashboard on one sees what the others ingest, and a downlink
            // through one reaches a device connected to another.
            let instance = try PlatformStores.instanceID(configuration)
            let feed = liveFeed
            let relay = PostgresLiveRelay(
                storage: postgres, instanceID: instance,
                deliver: { await feed.pointsCommitted($0) }, watchedHere: { feed.watchedTenants }, logger: logger)
            observers.append(relay)
            liveRelay = relay
            let calls = PostgresInstanceCalls(storage: postgres, instanceID: instance, logger: logger)
            sharedCalls = calls
            downlinkRelay = PostgresDownlinkRelay(calls: calls, sessions: sessions)
        } else {
            liveRelay = nil
            sharedCalls = nil
            downlinkRelay = nil
        }
        instanceCalls = sharedCalls
        ingestor = Ingestor(
            configuration: configuration.ingest.ingestor, journal: journal, pointStore: points, registry: registry,
            clock: clock, observers: observers, parsers: parsers, logger: logger)
        let gateway = DefaultIngestGateway(
            ingestor: ingestor, authenticator: deviceAuth, configuration: configuration.ingest.gateway, logger: logger)
        self.gateway = gateway
        http = HTTPIngestTransport(
            configuration: configuration.http.listener, gateway: gateway, tokenService: deviceAuth, logger: logger)
        coap = configuration.coap.listener.map { CoAPTransport(configuration: $0, gateway: gateway, logger: logger) }
        // A listener's parser is looked up by name for each message: script parsers are registered after
        // this (ParserCatalog.load) and can be replaced at run time.
        let parsers = self.parsers
        webSocket = configuration.websocket.map { w in
            WebSocketTransport(
                configuration: w.listener, gateway: gateway, sessions: sessions,
                parser: RegistryParser(name: w.parser, registry: parsers), logger: logger)
        }
        tcp = configuration.tcp.map { t in
            TCPTransport(
                configuration: t.listener, gateway: gateway, sessions: sessions,
                parser: RegistryParser(name: t.parser, registry: parsers), logger: logger)
        }
        // In a cluster the file's devices are placed like the others (prepare() adds them): none runs at start.
        let clustered = configuration.cluster.redis != nil
        let configured = try configuration.modbus.map { section in
            try ModbusTransport(
                configuration: section.poller, devices: clustered ? [] : section.devices, gateway: gateway,
                clock: clock,
                logger: logger)
        }
        modbus = ModbusOnDemand(transport: configured) { [gateway, clock, logger] () throws(IoTError) in
            try ModbusTransport(gateway: gateway, clock: clock, logger: logger)
        }
        var mqttConfiguration = configuration.mqtt.manager
        mqttConfiguration.outbound = configuration.outbound
        mqtt = MQTTClientManager(configuration: mqttConfiguration, gateway: gateway, parsers: parsers, logger: logger)
        let mqtt = mqtt
        if let redis = configuration.cluster.redis {
            cluster = try ClusterCoordinator(
                configuration: redis.coordinatorConfiguration(instanceID: try PlatformStores.instanceID(configuration)),
                manager: mqtt, logger: logger)
        } else {
            cluster = nil
        }
        let mqttAdministration: any MQTTClientAdministration = cluster ?? mqtt
        var observerConfiguration = configuration.coap.observer
        observerConfiguration.outbound = configuration.outbound
        coapObservations = CoAPObserverManager(configuration: observerConfiguration, gateway: gateway, logger: logger)
        if let postgres, let cluster, let calls = sharedCalls {
            // One instance at a time evaluates a device's rules (the others send it the device's points), polls a
            // Modbus device and observes a CoAP resource.
            let instance = try PlatformStores.instanceID(configuration)
            let rules = self.rules
            ruleRelay = PostgresRuleRelay(
                storage: postgres, instanceID: instance, deliverPoints: { await rules.forwardedPoints($0) },
                deliverAlarm: { await rules.alarmChangedElsewhere(tenant: $0, ruleID: $1, originator: $2) },
                logger: logger)
            let placedModbus = PlacedModbus(inner: modbus, calls: calls, instanceID: instance, logger: logger)
            let placedCoAP = PlacedCoAPObservations(inner: coapObservations, instanceID: instance, logger: logger)
            self.placedModbus = placedModbus
            self.placedCoAP = placedCoAP
            membership = MembershipFollower(
                cluster: cluster, rules: rules, modbus: placedModbus, coap: placedCoAP,
                board: PostgresStatusBoard(storage: postgres), instanceID: instance, logger: logger)
        } else {
            ruleRelay = nil
            placedModbus = nil
            placedCoAP = nil
            membership = nil
        }
        addedTransports = try layers.transports.map { try $0(gateway) }

        let provisioners = try Self.brokerProvisioners(configuration.brokerAccounts, logger: logger)
        var brokerAccess: BrokerAccessControl?
        if let accounts = configuration.brokerAccounts, let emqx = accounts.emqx {
            brokerAccess = BrokerAccessControl(
                policy: accounts.policy,
                configuration: .init(
                    ignoredUsernames: Set(emqx.ignoreUsernames ?? []),
                    ignoredUsernamePrefixes: emqx.ignoreUsernamePrefixes ?? []),
                authenticator: deviceAuth, registry: registry, tokens: deviceAuth, logger: logger)
        }
        var managementConfiguration = configuration.management
        managementConfiguration.brokerAuthKey = try configuration.brokerAccounts?.emqxKey()
        let definitions = stores.definitions
        var downlinkElsewhere: (@Sendable ([UInt8], DeviceIdentity) async throws(IoTError) -> Int)?
        if let relay = downlinkRelay {
            downlinkElsewhere = { @Sendable payload, device throws(IoTError) in
                try await relay.send(payload, to: device)
            }
        }
        var resources: [any ManagementRoutes] = [
            ParserRoutes(catalog: parserCatalog), CredentialRoutes(manager: deviceAuth),
            RuleRoutes(engine: rules, definitions: definitions), AlarmRoutes(engine: rules, state: ruleState),
            StatisticsRoutes(scheduler: statistics, results: statisticsStore, definitions: definitions),
            NotificationRoutes(
                router: notifications, outbox: outbox, inbox: inbox, dispatcher: dispatcher, definitions: definitions),
            DownlinkRoutes(sessions: sessions, elsewhere: downlinkElsewhere),
            LiveFeedRoutes(feed: liveFeed),
            MQTTClientRoutes(clients: mqttAdministration, definitions: definitions),
            CoAPObservationRoutes(observations: placedCoAP ?? coapObservations, definitions: definitions),
        ]
        resources.append(
            ClusterRoutes(
                source: cluster
                    ?? SingleInstanceStatus(
                        instanceID: configuration.cluster.instanceID ?? ProcessInfo.processInfo.hostName,
                        manager: mqtt)))
        resources.append(ModbusRoutes(modbus: placedModbus ?? modbus, definitions: definitions))
        resources.append(DashboardRoutes(definitions: definitions))
        reports = ReportScheduler(
            clock: clock, builder: ReportBuilder(points: points, registry: registry, alarms: ruleState),
            runs: definitions, outbox: outbox, enqueued: { tenant in Task { await dispatcher.wake(tenant) } },
            logger: logger)
        resources.append(ReportRoutes(scheduler: reports, definitions: definitions))
        // Users, sign-in, API keys and the audit log; links go through the tenant's outbox.
        var identityConfiguration = configuration.identity.service
        if identityConfiguration.linkBaseURL == nil {
            let scheme = configuration.management.tls == nil ? "http" : "https"
            identityConfiguration.linkBaseURL =
                "\(scheme)://\(configuration.management.host):\(configuration.management.port)/console/"
        }
        identity = IdentityService(
            configuration: identityConfiguration,
            keys: try SigningKeys(
                file: configuration.identity.signingKeysFile ?? configuration.dataDirectory + "/identity-keys.json"),
            store: identityStore, audit: stores.audit,
            notifier: configuration.identity.notificationChannel.map { [notifications] in
                OutboxAccountNotifier(router: notifications, channel: $0, clock: clock)
            },
            registry: registry, clock: clock, logger: logger)
        let management = ManagementServer(
            configuration: managementConfiguration, registry: registry, points: points,
            tokens: provisioners.isEmpty ? deviceAuth : ProvisioningTokenIssuer(deviceAuth, provisioners: provisioners),
            ingestor: ingestor, prometheus: prometheus, resources: resources, brokerAccess: brokerAccess,
            identity: identity, activity: activity, logger: logger)
        self.management = management
        definitionFollower = (stores.definitions as? PostgresDefinitionStore).map {
            DefinitionFollower(store: $0, management: management)
        }
    }

    /// The components in start order; a graceful shutdown stops them in reverse: listeners first, then the
    /// ingestor, which drains what was acknowledged into the store (the rule engine still sees it), then
    /// the statistics scheduler and the rule engine, which saves its state, and last the notification
    /// dispatcher (what the drain raised is still enqueued; what it cannot send stays in the outbox), and after
    /// it the backup service, which ships what the drain left in the journal.
    public var services: [any Service] {
        // The PostgreSQL pool first: it is stopped last, after everything that writes through it.
        var services: [any Service] = postgres.map { [$0] } ?? []
        if let backup { services.append(backup) }
        if let influxDB { services.append(influxDB) }
        services += [dispatcher, rules, statistics, reports, ingestor, identity]
        if let retention { services.append(retention) }
        services += [management, http, mqtt, coapObservations]
        // After the client manager, so that it stops first (graceful shutdown runs in reverse order): its
        // clients' sessions are handed over before the manager stops.
        if let cluster { services.append(cluster) }
        if let liveRelay { services.append(liveRelay) }
        if let ruleRelay { services.append(ruleRelay) }
        if let instanceCalls { services.append(instanceCalls) }
        if let membership { services.append(membership) }
        if let definitionFollower { services.append(definitionFollower) }
        services.append(modbus)
        if let webSocket { services.append(webSocket) }
        if let coap { services.append(coap) }
        return services + tcp + addedTransports
    }

    /// Runs the start-up order once (later calls return at once): the script parsers saved through the API
    /// and those the configuration declares, the rules and jobs saved through the API, notification routing,
    /// the configuration's tenants, its MQTT clients and its CoAP observations. ``run()`` calls it; call it
    /// first yourself to add your own data before anything listens.
    ///
    /// - Throws: ``ConfigurationError`` naming the declaration that failed (`parsers[csv]: …`).
    public func prepare() async throws {
        guard
            prepared.withLock({ done in
                defer { done = true }
                return !done
            })
        else { return }
        try await postgres?.waitUntilReachable()
        do {
            try await cluster?.waitUntilReachable()
        } catch {
            throw ConfigurationError("cluster.redis: \(error.message)")
        }
        try await loadParsers()
        try await restoreDefinitions()
        await rules.addHandler(notifications)
        if let ruleRelay { await rules.setForwarding(ruleRelay) }
        try await seedTenants()
        try await startMQTTClients()
        try startCoAPObservations()
        try await placeModbusDevices()
        await cluster?.onRedisDataLost { [weak self] in await self?.restoreClusterClients() }
    }

    /// Prepares (``prepare()``), then runs every component until graceful shutdown or cancellation.
    public func run() async throws {
        try await prepare()
        let group = ServiceGroup(
            configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        do {
            try await group.run()
        } catch {
            await storage.close()
            throw error
        }
        // Everything has stopped and drained: checkpoint the databases and remove their WAL files.
        await storage.close()
    }

    /// The ports the HTTP listener and the management API bound (useful with port 0), once they listen.
    public func listeningPorts() async throws -> (http: Int, management: Int) {
        (try await http.listeningPort(), try await management.listeningPort())
    }
}
