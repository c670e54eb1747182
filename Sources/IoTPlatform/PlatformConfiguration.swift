import IoTCluster
public import IoTCore
public import IoTPostgres
public import IoTProtocols
public import IoTRules
public import IoTServer
public import IoTStorage
public import Logging

/// Everything ``IoTPlatform`` builds, in one value: the libraries' own `Configuration`s, the platform's
/// sections around them (devices to poll, clients to start, tenants to seed), and the file's shape.
///
/// Each section of the file decodes straight into the library's `Configuration` (`http:` is
/// `HTTPIngestTransport.Configuration`, `journal:` is `FileJournal.Configuration`, …), each with its
/// defaults: a file names only what it changes. ``load(path:environment:)`` reads a file the way `iotd` does
/// (secrets from files and the environment, unknown keys refused with their path), and ``validate()``
/// checks what the types cannot. In code, start from ``init()`` and set what you need:
///
/// ```swift
/// var configuration = PlatformConfiguration()
/// configuration.dataDirectory = "/var/lib/iot"
/// configuration.http.listener.port = 8080
/// configuration.management.adminAPIKey = adminKey
/// ```
///
/// `Examples/iotd.example.yaml` documents every key of the file.
public struct PlatformConfiguration: Sendable {
    /// Where the journal (`<dataDirectory>/journal`) and the SQLite databases live. Default `./data`.
    public var dataDirectory = "./data"
    /// The write-ahead journal (`journal:`); its directory is always `<dataDirectory>/journal`.
    public var journal = FileJournal.Configuration()
    /// The embedded store (`storage:`).
    public var storage = Storage()
    /// The ingest pipeline and its front door (`ingest:`).
    public var ingest = Ingest()
    /// The HTTP device listener (`http:`); always on.
    public var http = HTTP()
    /// The CoAP listener and the CoAP observations (`coap:`).
    public var coap = CoAP()
    /// The management API (`management:`).
    public var management = ManagementServer.Configuration()
    /// The Modbus poller (`modbus:`); `nil`: no poller.
    public var modbus: Modbus?
    /// Device authentication (`auth:`).
    public var auth = DeviceAuthService.Configuration()
    /// The WebSocket device listener (`websocket:`); `nil`: none.
    public var websocket: StreamListener<WebSocketTransport.Configuration>?
    /// Raw TCP device listeners (`tcp:`), any number.
    public var tcp: [StreamListener<TCPTransport.Configuration>] = []
    /// The log level (`logging.level`); `nil`: whoever bootstraps swift-log decides (`iotd`: info).
    public var logLevel: Logger.Level?
    /// How `iotd` writes log lines (`logging.format`): `text` (the default) or `json`, one object per line
    /// (``JSONLogHandler``).
    public var logFormat = LogFormat.text

    /// A log line format.
    public enum LogFormat: String, Sendable, Decodable {
        /// swift-log's text lines.
        case text
        /// One JSON object per line (``JSONLogHandler``).
        case json
    }
    /// MQTT ingest (`mqtt:`): the client manager and the clients to run from the start.
    public var mqtt = MQTT()
    /// Script parsers compiled at start (`parsers:`); products name them in their `parser` field.
    public var parsers: [ScriptParser] = []
    /// Notification channels, delivery settings and recipient groups (`notifications:`).
    public var notifications = NotificationSettings()
    /// Tenants, with their products, devices, rules, statistics and notification routing, created or updated
    /// at each start (`tenants:`).
    public var tenants: [TenantSeed] = []
    /// Device accounts at MQTT brokers (`brokerAccounts:`); `nil`: none.
    public var brokerAccounts: BrokerAccountsConfiguration?
    /// The loopback, private and link-local hosts that notification channels, MQTT brokers and CoAP
    /// observations may reach (`outbound:`); public ones always may. One policy for all three.
    public var outbound = OutboundPolicy()
    /// `identity:`: users, sign-in, API keys and the audit log of the management API.
    public var identity = Identity()
    /// Scheduled and continuous backups (`backup:`); `nil`: none (``BackupService``).
    public var backup: BackupService.Configuration?
    /// Where committed points are forwarded (`exports:`).
    public var exports = Exports()
    /// When a device counts as offline (`devices:`): the device listing's `online`, the console's status.
    public var devices = DeviceActivity.Configuration()
    /// This instance among several on one database (`cluster:`).
    public var cluster = Cluster()

    /// `exports:` of the configuration.
    public struct Exports: Sendable, Decodable {
        /// Every committed point to InfluxDB 1.x (``InfluxDBSink``); `nil`: none.
        public var influxdb: InfluxDBSink.Configuration?
        /// No export.
        public init() {}
    }

    /// The defaults of every section: HTTP on 127.0.0.1:8080, the management API on 127.0.0.1:8081 (answering
    /// 401 until ``management`` has an admin key), data in `./data`.
    public init() {}

    /// `storage:`: the SQLite files and the point store on them, or a PostgreSQL database (`postgres:`).
    public struct Storage: Sendable {
        /// The databases (`cacheSizeKiB`); the directory is always ``PlatformConfiguration/dataDirectory``.
        public var sqlite = SQLiteStorage.Configuration()
        /// The point store (`duplicatePolicy`, `retentionDays`).
        public var points = SQLitePointStore.Configuration()
        /// Every store in PostgreSQL instead of SQLite (`postgres: {url, passwordFile, schemaPrefix,
        /// maximumConnections}`), for several instances on one database; `nil`: SQLite. The journal stays in
        /// ``PlatformConfiguration/dataDirectory``.
        public var postgres: PostgresStorage.Configuration?
        /// The defaults.
        public init() {}
    }

    /// `cluster:`: this instance among several on one database.
    public struct Cluster: Sendable, Decodable {
        /// The instance's name (`instanceID`), unique among the instances on one database: the PostgreSQL stores
        /// keep this instance's journal watermark and outbox claims under it. Default: the id kept in
        /// `<dataDirectory>/instance-id`, made once (a random UUID), so it goes with the journal it belongs to.
        public var instanceID: String?
        /// `redis: {url, password, prefix, heartbeatMillis, leaseMillis}`: the instances share their MQTT clients
        /// through this Redis server (IoTCluster's `ClusterCoordinator`); needs `storage.postgres`. `nil`: this
        /// instance runs alone.
        public var redis: Redis?
        /// The defaults.
        public init() {}

        /// `cluster.redis:`.
        public struct Redis: Sendable, Hashable, Decodable {
            /// `redis://host:port[/db]`.
            public var url: String
            /// The Redis password, if the server asks for one (or `passwordFile`, `passwordEnv`).
            public var password: String?
            /// The first part of every key. Default `iot`.
            public var prefix: String = "iot"
            /// How often an instance renews its registration. Default 500 ms.
            public var heartbeatMillis: Int = 500
            /// How long a registration lives unrenewed: a silent instance's clients move after it. Default 1 500 ms.
            public var leaseMillis: Int = 1_500

            /// A server at `url`, the other settings at their defaults.
            public init(url: String) { self.url = url }

            private enum CodingKeys: String, CodingKey { case url, password, prefix, heartbeatMillis, leaseMillis }

            /// Decodes `cluster.redis`; only `url` is required.
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                url = try c.decode(String.self, forKey: .url)
                password = try c.decodeIfPresent(String.self, forKey: .password)
                prefix = try c.decodeIfPresent(String.self, forKey: .prefix) ?? prefix
                heartbeatMillis = try c.decodeIfPresent(Int.self, forKey: .heartbeatMillis) ?? heartbeatMillis
                leaseMillis = try c.decodeIfPresent(Int.self, forKey: .leaseMillis) ?? leaseMillis
            }
        }
    }

    /// `ingest:`: the pipeline's queue and rate limit, and how long the front door remembers a credential.
    public struct Ingest: Sendable {
        /// Queue, batch, retry, registry cache and the per-device rate limit.
        public var ingestor = Ingestor.Configuration()
        /// The credential cache every listener shares (`authenticationCacheMillis`, 0–1000 ms).
        public var gateway = DefaultIngestGateway.Configuration()
        /// The defaults.
        public init() {}
        /// Whether the file gave `ingest.authenticationCacheMillis` (else the older `http.`/`coap.` keys count).
        var authenticationCacheGiven = false
    }

    /// `http:`: the HTTP device listener, and two keys kept from before `ingest:` had them.
    public struct HTTP: Sendable {
        /// Host, port, body limit, TLS and connection limits.
        public var listener = HTTPIngestTransport.Configuration()
        /// The defaults.
        public init() {}
        /// `http.rateLimit`, read when `ingest.rateLimit` is absent.
        var legacyRateLimit: RateLimit?
        /// `http.authenticationCacheMillis`, read when `ingest.authenticationCacheMillis` is absent.
        var legacyAuthenticationCacheMillis: Int64?
    }

    /// `coap:`: the CoAP listener (only with the section) and the observations of CoAP devices (always
    /// running, so that `/api/v1/coap/observations` works without a listener).
    public struct CoAP: Sendable {
        /// The listener; `nil`: none.
        public var listener: CoAPTransport.Configuration?
        /// The observer's limits (`maxObservations`, `reregisterAfterMillis`).
        public var observer = CoAPObserverManager.Configuration()
        /// Resources observed from the start (`observations`); each replaces one of the same id saved through
        /// the API.
        public var observations: [CoAPObservationSpec] = []
        /// No listener, the observer's defaults.
        public init() {}
        /// `coap.authenticationCacheMillis`, read when neither `ingest.` nor `http.` has it.
        var legacyAuthenticationCacheMillis: Int64?
    }

    /// `modbus:`: the poller and its devices (more are added through `/api/v1/modbus/devices`).
    public struct Modbus: Sendable {
        /// I/O threads, reserved descriptors, device limit.
        public var poller = ModbusTransport.Configuration()
        /// The devices polled from the start.
        public var devices: [ModbusDevice] = []
        /// The defaults, no device.
        public init() {}
    }

    /// A WebSocket or TCP listener's settings and the parser of its messages (`parser`, default `json`).
    public struct StreamListener<Listener: Sendable & Decodable>: Sendable {
        /// The listener's settings.
        public var listener: Listener
        /// The parser every message goes through: `json`, `senml` or a script parser's name.
        public var parser: String
        /// A listener with its parser.
        public init(_ listener: Listener, parser: String = "json") {
            self.listener = listener
            self.parser = parser
        }
    }

    /// `mqtt:`: the client manager and the clients to start.
    public struct MQTT: Sendable {
        /// Loop threads and limits; the outbound policy is ``PlatformConfiguration/outbound``.
        public var manager = MQTTClientManager.Configuration()
        /// The clients started at start-up (more through `/api/v1/mqtt/clients`).
        public var clients: [MQTTClientSpec] = []
        /// The defaults, no client.
        public init() {}
    }

    /// A script parser declared in the file: it is compiled and saved at each start (the file wins over an
    /// API change of the same name).
    public struct ScriptParser: Sendable, Hashable, Codable {
        /// The name products give in their `parser` field.
        public var name: String
        /// `lua` or `javascript`.
        public var language: String
        /// The script.
        public var source: String
        /// A parser declaration.
        public init(name: String, language: String, source: String) {
            self.name = name
            self.language = language
            self.source = source
        }
    }

    /// A tenant created or updated at each start, with what it owns.
    public struct TenantSeed: Sendable, Codable {
        /// The tenant id (1–64 of A–Z a–z 0–9 - _).
        public var id: String
        /// A display name.
        public var name: String?
        /// `reject` (default) or `register:<product id>`: what happens to messages of an unknown device.
        public var unknownDevices: String?
        /// What happens to a signal the product does not declare.
        public var unknownSignals: IngestPolicy.UnknownSignals?
        /// Products, created or replaced.
        public var products: [Product]?
        /// Devices, created or replaced.
        public var devices: [Device]?
        /// Alarm rules, added or replaced.
        public var rules: [AlarmRule]?
        /// Statistics jobs, added or replaced.
        public var statistics: [StatisticsJob]?
        /// Notification templates and routing policies.
        public var notifications: TenantNotificationSeed?
        /// A tenant with nothing in it.
        public init(id: String, name: String? = nil) {
            self.id = id
            self.name = name
        }
    }
}

// MARK: - Decoding

extension PlatformConfiguration: Decodable {
    private enum CodingKeys: String, CodingKey {
        case dataDirectory, journal, storage, ingest, http, coap, management, modbus, auth, websocket, tcp, logging
        case mqtt, parsers, notifications, tenants, brokerAccounts, outbound, identity, backup, exports, devices
        case cluster
    }

    private struct LoggingSection: Decodable {
        var level: String?
        var format: String?
    }

    /// Reads the file's sections; a section or key left out keeps its default. The older places of two keys
    /// still count: `http.rateLimit` when `ingest.rateLimit` is absent, and `http.`/`coap.authenticationCacheMillis`
    /// when `ingest.authenticationCacheMillis` is absent.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dataDirectory = try c.decode(.dataDirectory, or: dataDirectory)
        journal = try c.decode(.journal, or: journal)
        storage = try c.decode(.storage, or: storage)
        ingest = try c.decode(.ingest, or: ingest)
        http = try c.decode(.http, or: http)
        coap = try c.decode(.coap, or: coap)
        management = try c.decode(.management, or: management)
        modbus = try c.decodeIfPresent(Modbus.self, forKey: .modbus)
        auth = try c.decode(.auth, or: auth)
        websocket = try c.decodeIfPresent(StreamListener<WebSocketTransport.Configuration>.self, forKey: .websocket)
        tcp = try c.decode(.tcp, or: tcp)
        let logging = try c.decodeIfPresent(LoggingSection.self, forKey: .logging)
        if let level = logging?.level {
            guard let value = Logger.Level(rawValue: level.lowercased()) else {
                throw ConfigurationError(
                    "logging.level: '\(level)' is not one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = value
        }
        if let format = logging?.format {
            guard let value = LogFormat(rawValue: format.lowercased()) else {
                throw ConfigurationError("logging.format: '\(format)' is not one of text, json")
            }
            logFormat = value
        }
        mqtt = try c.decode(.mqtt, or: mqtt)
        parsers = try c.decode(.parsers, or: parsers)
        notifications = try c.decode(.notifications, or: notifications)
        tenants = try c.decode(.tenants, or: tenants)
        brokerAccounts = try c.decodeIfPresent(BrokerAccountsConfiguration.self, forKey: .brokerAccounts)
        outbound = try c.decode(.outbound, or: outbound)
        identity = try c.decode(.identity, or: identity)
        backup = try c.decodeIfPresent(BackupService.Configuration.self, forKey: .backup)
        exports = try c.decode(.exports, or: exports)
        devices = try c.decode(.devices, or: devices)
        cluster = try c.decode(.cluster, or: cluster)
        // The older places of two ingest settings.
        if ingest.ingestor.rateLimit == nil { ingest.ingestor.rateLimit = http.legacyRateLimit }
        if !ingest.authenticationCacheGiven,
            let v = http.legacyAuthenticationCacheMillis ?? coap.legacyAuthenticationCacheMillis
        {
            ingest.gateway.authenticationCacheLifetime = .milliseconds(v)
        }
    }
}

extension PlatformConfiguration {
    /// `identity:` of the configuration: the management API's users, sign-in, API keys and audit log.
    ///
    /// ```yaml
    /// identity:
    ///   signingKeysFile: /var/lib/iotd/identity-keys.json   # default: <dataDirectory>/identity-keys.json
    ///   notificationChannel: ops-email    # carries activation and password-reset links
    ///   linkBaseURL: https://iot.example.com/console/
    ///   accessTokenSeconds: 900
    ///   refreshTokenSeconds: 2592000
    ///   passwordMinLength: 12
    ///   maxFailedSignIns: 5
    ///   lockoutSeconds: 900
    ///   auditRetentionDays: 90
    /// ```
    public struct Identity: Sendable {
        /// Token lifetimes, the password policy, the lockout and the audit retention.
        public var service = IdentityService.Configuration()
        /// The JSON Web Key Set that signs access tokens; `nil` for `<dataDirectory>/identity-keys.json`
        /// (created, mode 0600, on first start; `iotd keys rotate` adds a key).
        public var signingKeysFile: String?
        /// The notification channel (an email channel of `notifications.channels`) that carries activation and
        /// password-reset links; `nil` sends none (users are then made with a password).
        public var notificationChannel: String?

        /// The defaults.
        public init() {}
    }
}

extension PlatformConfiguration.Identity: Decodable {
    private enum CodingKeys: String, CodingKey { case signingKeysFile, notificationChannel }

    /// Reads the section's keys; the service's keys are in the same mapping.
    public init(from decoder: any Decoder) throws {
        service = try IdentityService.Configuration(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        signingKeysFile = try c.decodeIfPresent(String.self, forKey: .signingKeysFile)
        notificationChannel = try c.decodeIfPresent(String.self, forKey: .notificationChannel)
    }
}

extension PlatformConfiguration.Storage: Decodable {
    private enum CodingKeys: String, CodingKey { case postgres }

    /// Reads `cacheSizeKiB`, `duplicatePolicy`, `retentionDays` and `postgres` from one mapping.
    public init(from decoder: any Decoder) throws {
        sqlite = try SQLiteStorage.Configuration(from: decoder)
        points = try SQLitePointStore.Configuration(from: decoder)
        postgres = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(
            PostgresStorage.Configuration.self, forKey: .postgres)
    }
}

extension PlatformConfiguration.Ingest: Decodable {
    private enum CodingKeys: String, CodingKey { case authenticationCacheMillis }

    /// Reads the ingestor's and the front door's keys from one mapping.
    public init(from decoder: any Decoder) throws {
        ingestor = try Ingestor.Configuration(from: decoder)
        gateway = try DefaultIngestGateway.Configuration(from: decoder)
        authenticationCacheGiven = try decoder.container(keyedBy: CodingKeys.self).contains(.authenticationCacheMillis)
    }
}

/// The older places of `ingest.rateLimit` and `ingest.authenticationCacheMillis`, range-checked where they stand.
private enum LegacyIngestKeys: String, CodingKey {
    case rateLimit, authenticationCacheMillis

    static func cacheMillis(_ c: KeyedDecodingContainer<Self>) throws -> Int64? {
        guard let v = try c.decodeIfPresent(Int64.self, forKey: .authenticationCacheMillis) else { return nil }
        // The gateway's own range, checked where the key stands so that the message names it.
        do throws(IoTError) {
            try DefaultIngestGateway.Configuration(authenticationCacheLifetime: .milliseconds(v)).validate()
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .authenticationCacheMillis, in: c, debugDescription: error.message)
        }
        return v
    }
}

extension PlatformConfiguration.HTTP: Decodable {
    /// Reads the listener's keys and the older `rateLimit` and `authenticationCacheMillis`.
    public init(from decoder: any Decoder) throws {
        listener = try HTTPIngestTransport.Configuration(from: decoder)
        let c = try decoder.container(keyedBy: LegacyIngestKeys.self)
        legacyRateLimit = try c.decodeIfPresent(RateLimit.self, forKey: .rateLimit)
        legacyAuthenticationCacheMillis = try LegacyIngestKeys.cacheMillis(c)
    }
}

extension PlatformConfiguration.CoAP: Decodable {
    private enum CodingKeys: String, CodingKey { case observations }

    /// Reads the listener's and the observer's keys, `observations`, and the older `authenticationCacheMillis`.
    public init(from decoder: any Decoder) throws {
        listener = try CoAPTransport.Configuration(from: decoder)
        observer = try CoAPObserverManager.Configuration(from: decoder)
        observations = try decoder.container(keyedBy: CodingKeys.self).decode(.observations, or: [])
        legacyAuthenticationCacheMillis = try LegacyIngestKeys.cacheMillis(
            decoder.container(keyedBy: LegacyIngestKeys.self))
    }
}

extension PlatformConfiguration.Modbus: Decodable {
    private enum CodingKeys: String, CodingKey { case devices }

    /// Reads the poller's keys and `devices`.
    public init(from decoder: any Decoder) throws {
        poller = try ModbusTransport.Configuration(from: decoder)
        devices = try decoder.container(keyedBy: CodingKeys.self).decode(.devices, or: [])
    }
}

extension PlatformConfiguration.StreamListener: Decodable {
    private enum CodingKeys: String, CodingKey { case parser }

    /// Reads the listener's keys and `parser`.
    public init(from decoder: any Decoder) throws {
        listener = try Listener(from: decoder)
        parser = try decoder.container(keyedBy: CodingKeys.self).decode(.parser, or: "json")
    }
}

extension PlatformConfiguration.MQTT: Decodable {
    private enum CodingKeys: String, CodingKey { case clients }

    /// Reads the manager's keys and `clients`.
    public init(from decoder: any Decoder) throws {
        manager = try MQTTClientManager.Configuration(from: decoder)
        clients = try decoder.container(keyedBy: CodingKeys.self).decode(.clients, or: [])
    }
}

/// A configuration that cannot run: the message names the key and says what to write.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// `key: what is wrong; what to write`.
    public let description: String
    /// An error with its message.
    public init(_ description: String) { self.description = description }
}

extension PlatformConfiguration.Cluster.Redis {
    /// The coordinator's configuration for the instance `instanceID`.
    func coordinatorConfiguration(instanceID: String) -> ClusterCoordinator.Configuration {
        ClusterCoordinator.Configuration(
            url: url, password: password, instanceID: instanceID, prefix: prefix,
            heartbeat: .milliseconds(heartbeatMillis), leaseTTL: .milliseconds(leaseMillis))
    }
}
