import Foundation
import IoTCore
import IoTProtocols
import IoTRules
import IoTServer
import IoTStorage
import Logging

/// `iotd.yaml`: every key is optional; `Examples/iotd.example.yaml` documents each one.
struct DaemonConfiguration: Codable, Sendable {
    struct Journal: Codable, Sendable {
        var durability: FileJournal.Durability?
        var segmentBytes: Int?
    }
    struct Storage: Codable, Sendable {
        var duplicatePolicy: DuplicatePolicy?
        var retentionDays: Double?
        var cacheSizeKiB: Int?
    }
    struct Ingest: Codable, Sendable {
        var queueCapacityPoints: Int?
        var maxBatchPoints: Int?
        var retryAfterMillis: Int64?
        var registryCacheMillis: Int64?
        /// Per-device rate limit of every transport, `"100:1,2000:60"`.
        var rateLimit: String?
        /// How long every listener reuses a successful credential lookup (0–1000 ms, default 1000).
        var authenticationCacheMillis: Int64?
    }
    struct HTTP: Codable, Sendable {
        var host: String?
        var port: Int?
        var maxBodyBytes: Int?
        /// The older place of `ingest.rateLimit` (it covered HTTP only); used when `ingest.rateLimit` is absent.
        var rateLimit: String?
        /// The older place of `ingest.authenticationCacheMillis`; used when that is absent.
        var authenticationCacheMillis: Int64?
        var tls: TLS?
        var limits: ListenerLimits?
    }
    /// The CoAP device listener (`coap:`); absent: no CoAP listener.
    struct CoAP: Codable, Sendable {
        var host: String?
        var port: Int?
        var maxBodyBytes: Int?
        /// The older place of `ingest.authenticationCacheMillis`; used when that and `http.…` are absent.
        var authenticationCacheMillis: Int64?
        var dtls: DTLS?
        /// Resources observed on devices from the start (more through `/api/v1/coap/observations`).
        var observations: [CoAPObservationSpec]?
        var maxObservations: Int?
        var reregisterAfterMillis: Int64?
        struct DTLS: Codable, Sendable {
            var port: Int?
            var hint: String?
            /// PSK identity → key.
            var keys: [String: String]
        }
    }
    struct Management: Codable, Sendable {
        var host: String?
        var port: Int?
        /// Also `adminAPIKeyFile` or `adminAPIKeyEnv` (read when the file is loaded), or `IOTD_ADMIN_API_KEY`.
        var adminAPIKey: String?
        var tls: TLS?
        var limits: ListenerLimits?
    }
    /// The Modbus poller: its I/O threads and the devices it polls (see ModbusDevice's decoding).
    struct Modbus: Codable, Sendable {
        var ioThreads: Int?
        /// Descriptor numbers below 1024 set aside for devices added at run time (ModbusTransport.Configuration.reservedDescriptors).
        var reservedDescriptors: Int?
        var devices: [ModbusDevice]?
    }
    /// `auth:` device authentication.
    struct Auth: Codable, Sendable {
        var sessionTokenSeconds: Int64?
        var passwordIterations: Int?
        var maxFailedAttempts: Int?
        var failedAttemptWindowSeconds: Int64?
        var blockSeconds: Int64?
    }
    /// `websocket:` the WebSocket device listener (absent: off).
    struct WebSocket: Codable, Sendable {
        var host: String?
        var port: Int?
        var path: String?
        var maxMessageBytes: Int?
        var pingIntervalMillis: Int64?
        var idleTimeoutMillis: Int64?
        var parser: String?
        var tls: TLS?
        var limits: ListenerLimits?
    }
    /// `tls:` of a device listener (http, websocket, a tcp entry): PEM files, TLS 1.2 minimum.
    struct TLS: Codable, Sendable {
        var certificate: String
        var privateKey: String
        var clientCA: String?
        /// none, optional or required; default required with a clientCA, none without.
        var clientCertificates: String?

        var listenerTLS: ListenerTLS {
            ListenerTLS(
                certificatePath: certificate, privateKeyPath: privateKey, clientCAPath: clientCA,
                clientCertificates: clientCertificates.flatMap(ListenerTLS.ClientCertificates.init(rawValue:))
                    ?? (clientCA == nil ? .none : .required))
        }

        func validate(_ key: String) throws {
            if let mode = clientCertificates, ListenerTLS.ClientCertificates(rawValue: mode) == nil {
                throw ConfigurationError("\(key).tls.clientCertificates: '\(mode)' is not none, optional or required")
            }
            do { try listenerTLS.validate() } catch { throw ConfigurationError("\(key).tls: \(error.message)") }
        }
    }
    /// One entry of `tcp:`: a raw TCP device listener.
    struct TCP: Codable, Sendable {
        var host: String?
        var port: Int
        var framing: String?  // lines or length-prefixed
        var maxFrameBytes: Int?
        var idleTimeoutMillis: Int64?
        var handshakeTimeoutMillis: Int64?
        var maxConnections: Int?
        var maxConnectionsPerAddress: Int?
        var parser: String?
        var tls: TLS?
    }
    struct Logging: Codable, Sendable {
        var level: String?
    }
    /// MQTT ingest: loop threads, the instance's limits, and the clients to run from the start (more can be
    /// added at run time through `/api/v1/mqtt/clients`).
    struct MQTT: Codable, Sendable {
        var threads: Int?
        var limits: MQTTClientManager.Limits?
        var clients: [MQTTClientSpec]?
    }
    /// A script parser that products can name in their `parser` field.
    struct ScriptParserSeed: Codable, Sendable {
        var name: String
        var language: String  // lua or javascript
        var source: String
    }
    struct TenantSeed: Codable, Sendable {
        var id: String
        var name: String?
        var unknownDevices: String?  // "reject" or "register:<product>"
        var unknownSignals: IngestPolicy.UnknownSignals?
        var products: [Product]?
        var devices: [Device]?
        var rules: [AlarmRule]?
        var statistics: [StatisticsJob]?
        var notifications: TenantNotificationSeed?
    }

    var dataDirectory: String?
    var journal: Journal?
    var storage: Storage?
    var ingest: Ingest?
    var http: HTTP?
    var coap: CoAP?
    var management: Management?
    var modbus: Modbus?
    var auth: Auth?
    var websocket: WebSocket?
    var tcp: [TCP]?
    var logging: Logging?
    var mqtt: MQTT?
    var parsers: [ScriptParserSeed]?
    var notifications: NotificationSettings?
    var tenants: [TenantSeed]?
    var brokerAccounts: BrokerAccountsConfiguration?
    /// Loopback, private and link-local hosts that notification channels, MQTT brokers and CoAP observations
    /// may reach (public ones always may).
    var outbound: OutboundPolicy?
}

extension DaemonConfiguration {
    var directory: String { dataDirectory ?? "./data" }

    var journalConfiguration: FileJournal.Configuration {
        var c = FileJournal.Configuration(directory: directory + "/journal")
        if let d = journal?.durability { c.durability = d }
        if let s = journal?.segmentBytes { c.segmentBytes = s }
        return c
    }

    var storageConfiguration: SQLiteStorage.Configuration {
        var c = SQLiteStorage.Configuration(directory: directory)
        if let k = storage?.cacheSizeKiB { c.cacheSizeKiB = k }
        return c
    }

    var pointStoreConfiguration: SQLitePointStore.Configuration {
        var c = SQLitePointStore.Configuration()
        if let p = storage?.duplicatePolicy { c.duplicatePolicy = p }
        if let days = storage?.retentionDays { c.retentionMillis = Int64(days * 86_400_000) }
        return c
    }

    var ingestorConfiguration: Ingestor.Configuration {
        var c = Ingestor.Configuration()
        if let v = ingest?.queueCapacityPoints { c.queueCapacityPoints = v }
        if let v = ingest?.maxBatchPoints { c.maxBatchPoints = v }
        if let v = ingest?.retryAfterMillis { c.retryAfterMillis = v }
        if let v = ingest?.registryCacheMillis { c.registryCacheMillis = v }
        if let v = ingest?.rateLimit ?? http?.rateLimit { c.rateLimit = try? RateLimit(parsing: v) }
        return c
    }

    /// The front door every listener submits to. A valid credential is remembered for up to a second: one
    /// SQLite lookup per device and second instead of one per request; a revoked one stops working within
    /// that second.
    var gatewayConfiguration: DefaultIngestGateway.Configuration {
        DefaultIngestGateway.Configuration(
            authenticationCacheMillis: ingest?.authenticationCacheMillis ?? http?.authenticationCacheMillis
                ?? coap?.authenticationCacheMillis ?? 1_000)
    }

    /// The CoAP listener's configuration, or `nil` without a `coap:` section.
    var coapConfiguration: CoAPTransport.Configuration? {
        guard let coap else { return nil }
        var c = CoAPTransport.Configuration()
        if let v = coap.host { c.host = v }
        if let v = coap.port { c.port = v }
        if let v = coap.maxBodyBytes { c.maxBodyBytes = v }
        if let d = coap.dtls { c.dtls = .init(port: d.port ?? 5684, keys: d.keys, hint: d.hint ?? "iot") }
        return c
    }

    /// The CoAP observer manager's configuration (it runs with or without a `coap:` section).
    var coapObserverConfiguration: CoAPObserverManager.Configuration {
        var c = CoAPObserverManager.Configuration()
        if let v = coap?.maxObservations { c.maxObservations = v }
        if let v = coap?.reregisterAfterMillis { c.reregisterAfterMillis = v }
        if let v = outbound { c.outbound = v }
        return c
    }

    var httpConfiguration: HTTPIngestTransport.Configuration {
        var c = HTTPIngestTransport.Configuration()
        if let v = http?.host { c.host = v }
        if let v = http?.port { c.port = v }
        if let v = http?.maxBodyBytes { c.maxBodyBytes = v }
        c.tls = http?.tls?.listenerTLS
        if let v = http?.limits { c.limits = v }
        return c
    }

    var modbusConfiguration: ModbusTransport.Configuration {
        var c = ModbusTransport.Configuration()
        if let v = modbus?.ioThreads { c.ioThreads = v }
        if let v = modbus?.reservedDescriptors { c.reservedDescriptors = v }
        return c
    }

    var mqttConfiguration: MQTTClientManager.Configuration {
        var c = MQTTClientManager.Configuration()
        if let t = mqtt?.threads { c.threads = t }
        if let l = mqtt?.limits { c.limits = l }
        if let v = outbound { c.outbound = v }
        return c
    }

    var authConfiguration: DeviceAuthService.Configuration {
        var c = DeviceAuthService.Configuration()
        if let v = auth?.sessionTokenSeconds { c.sessionTokenMillis = v * 1000 }
        if let v = auth?.passwordIterations { c.passwordIterations = v }
        if let v = auth?.maxFailedAttempts { c.failedAttempts.maxFailures = v }
        if let v = auth?.failedAttemptWindowSeconds { c.failedAttempts.windowMillis = v * 1000 }
        if let v = auth?.blockSeconds { c.failedAttempts.blockMillis = v * 1000 }
        return c
    }

    var webSocketConfiguration: WebSocketTransport.Configuration? {
        guard let w = websocket else { return nil }
        var c = WebSocketTransport.Configuration()
        if let v = w.host { c.host = v }
        if let v = w.port { c.port = v }
        if let v = w.path { c.path = v }
        if let v = w.maxMessageBytes { c.maxMessageBytes = v }
        if let v = w.pingIntervalMillis { c.pingIntervalMillis = v }
        if let v = w.idleTimeoutMillis { c.idleTimeoutMillis = v }
        c.tls = w.tls?.listenerTLS
        if let v = w.limits { c.limits = v }
        return c
    }

    func tcpConfiguration(_ t: TCP) -> TCPTransport.Configuration {
        var c = TCPTransport.Configuration(port: t.port)
        if let v = t.host { c.host = v }
        if let v = t.framing.flatMap(TCPTransport.Framing.init(rawValue:)) { c.framing = v }
        if let v = t.maxFrameBytes { c.maxFrameBytes = v }
        if let v = t.idleTimeoutMillis { c.idleTimeoutMillis = v }
        if let v = t.handshakeTimeoutMillis { c.handshakeTimeoutMillis = v }
        if let v = t.maxConnections { c.maxConnections = v }
        if let v = t.maxConnectionsPerAddress { c.maxConnectionsPerAddress = v }
        c.tls = t.tls?.listenerTLS
        return c
    }

    func managementConfiguration(adminAPIKey: String?) throws -> ManagementServer.Configuration {
        var c = ManagementServer.Configuration()
        if let v = management?.host { c.host = v }
        if let v = management?.port { c.port = v }
        c.adminAPIKey = adminAPIKey
        c.brokerAuthKey = try brokerAccounts?.emqxKey()
        c.tls = management?.tls?.listenerTLS
        if let v = management?.limits { c.limits = v }
        return c
    }

    /// Checks what the types cannot: ranges and formats. Messages name the key and what to write.
    func validate() throws {
        func fail(_ key: String, _ message: String) throws -> Never {
            throw ConfigurationError("\(key): \(message)")
        }
        if let p = http?.port, !(0...65_535).contains(p) { try fail("http.port", "\(p) is not a port (0–65535)") }
        if let p = management?.port, !(0...65_535).contains(p) {
            try fail("management.port", "\(p) is not a port (0–65535)")
        }
        // Counts and sizes: each has a documented range (iotd.example.yaml), refused outside it.
        for (key, value, range) in [
            ("ingest.queueCapacityPoints", ingest?.queueCapacityPoints, 1...100_000_000),
            ("ingest.maxBatchPoints", ingest?.maxBatchPoints, 1...1_000_000),
            ("journal.segmentBytes", journal?.segmentBytes, 4_096...(1 << 30)),
            ("storage.cacheSizeKiB", storage?.cacheSizeKiB, 1...16_777_216),
            ("http.maxBodyBytes", http?.maxBodyBytes, 1...(1 << 30)),
            ("coap.maxBodyBytes", coap?.maxBodyBytes, 1...(1 << 30)),
            ("websocket.maxMessageBytes", websocket?.maxMessageBytes, 1...(1 << 30)),
            ("auth.maxFailedAttempts", auth?.maxFailedAttempts, 1...1_000_000),
            ("coap.maxObservations", coap?.maxObservations, 1...1_000_000),
        ] {
            if let v = value, !range.contains(v) {
                try fail(key, "\(v) is out of range; use \(range.lowerBound) to \(range.upperBound)")
            }
        }
        if let v = storage?.retentionDays, !(v > 0 && v <= 36_500) {
            try fail(
                "storage.retentionDays",
                "\(v) is out of range; use more than 0 and at most 36500 days, or leave it out to keep everything")
        }
        for (key, spec) in [("ingest.rateLimit", ingest?.rateLimit), ("http.rateLimit", http?.rateLimit)] {
            guard let spec else { continue }
            do throws(IoTError) { _ = try RateLimit(parsing: spec) } catch { try fail(key, error.message) }
        }
        if let v = auth?.passwordIterations, !(100_000...10_000_000).contains(v) {
            try fail(
                "auth.passwordIterations",
                "\(v) is out of range for PBKDF2-HMAC-SHA256; use 100000 to 10000000 (default 600000)")
        }
        // Seconds are turned into milliseconds: at most 10 years each, so that nothing overflows.
        for (key, value) in [
            ("auth.sessionTokenSeconds", auth?.sessionTokenSeconds),
            ("auth.failedAttemptWindowSeconds", auth?.failedAttemptWindowSeconds),
            ("auth.blockSeconds", auth?.blockSeconds),
        ] {
            if let v = value, !(1...IoTLimits.maxDurationMillis / 1000).contains(v) {
                try fail(key, "\(v) is out of range; use 1 to \(IoTLimits.maxDurationMillis / 1000) seconds")
            }
        }
        for (key, value) in [
            ("ingest.authenticationCacheMillis", ingest?.authenticationCacheMillis),
            ("http.authenticationCacheMillis", http?.authenticationCacheMillis),
            ("coap.authenticationCacheMillis", coap?.authenticationCacheMillis),
        ] {
            if let v = value, !(0...1_000).contains(v) {
                try fail(
                    key,
                    "\(v) is out of range; use 0 (off) to 1000 ms (a revoked credential stops working within a second)")
            }
        }
        for (key, value) in [
            ("ingest.retryAfterMillis", ingest?.retryAfterMillis),
            ("ingest.registryCacheMillis", ingest?.registryCacheMillis),
            ("coap.reregisterAfterMillis", coap?.reregisterAfterMillis),
        ] {
            if let v = value, !(0...IoTLimits.maxDurationMillis).contains(v) {
                try fail(key, "\(v) is out of range; use 0 to \(IoTLimits.maxDurationMillis) ms (10 years)")
            }
        }
        if let w = webSocketConfiguration {
            do { try w.validate() } catch { try fail("websocket", error.message) }
        }
        try http?.tls?.validate("http")
        try websocket?.tls?.validate("websocket")
        try management?.tls?.validate("management")
        for (key, limits) in [
            ("http.limits", http?.limits), ("websocket.limits", websocket?.limits),
            ("management.limits", management?.limits),
        ] {
            do throws(IoTError) { try limits?.validate() } catch { try fail(key, error.message) }
        }
        for (i, t) in (tcp ?? []).enumerated() { try t.tls?.validate("tcp[\(i)]") }
        for (i, t) in (tcp ?? []).enumerated() {
            if let f = t.framing, TCPTransport.Framing(rawValue: f) == nil {
                try fail("tcp[\(i)].framing", "'\(f)' is not lines or length-prefixed")
            }
            do { try tcpConfiguration(t).validate() } catch { try fail("tcp[\(i)]", error.message) }
        }
        if let level = logging?.level, Logger.Level(named: level) == nil {
            try fail("logging.level", "'\(level)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let v = modbus?.ioThreads, !(1...256).contains(v) { try fail("modbus.ioThreads", "must be 1–256") }
        if let v = modbus?.reservedDescriptors, !(0...512).contains(v) {
            try fail("modbus.reservedDescriptors", "must be 0–512")
        }
        for device in modbus?.devices ?? [] {
            do { try device.validate() } catch { try fail("modbus.devices[\(device.identity)]", error.message) }
        }
        for p in parsers ?? [] where p.language != "lua" && p.language != "javascript" {
            try fail("parsers[\(p.name)].language", "'\(p.language)' is not lua or javascript")
        }
        try brokerAccounts?.validate()
        if let t = mqtt?.threads, !(1...64).contains(t) { try fail("mqtt.threads", "use 1–64 loop threads") }
        var mqttIDs = Set<String>()
        for (i, c) in (mqtt?.clients ?? []).enumerated() {
            guard mqttIDs.insert(c.id).inserted else { try fail("mqtt.clients[\(i)].id", "'\(c.id)' appears twice") }
            do throws(IoTError) {
                _ = try c.transportConfiguration(parsers: nil)
            } catch {
                // Script parser names are only known once the parsers are built.
                if !error.message.contains(".parser:") { try fail("mqtt.clients[\(c.id)]", error.message) }
            }
        }
        if let v = coap?.reregisterAfterMillis, v < 1_000 {
            try fail("coap.reregisterAfterMillis", "use at least 1000 (ms); default 60000")
        }
        var observationIDs = Set<String>()
        for (i, o) in (coap?.observations ?? []).enumerated() {
            guard observationIDs.insert(o.id).inserted else {
                try fail("coap.observations[\(i)].id", "'\(o.id)' appears twice")
            }
            do throws(IoTError) { try o.validate() } catch { try fail("coap.observations[\(i)]", error.message) }
        }
        try notifications?.validate()
        // Every outbound destination of the file passes the same policy as those created through the API.
        let policy = outbound ?? OutboundPolicy()
        func checkDestination(_ host: String?, _ key: String, _ what: String) throws {
            guard let host, !host.isEmpty else { return }
            do throws(IoTError) {
                try policy.check(host: host, what: what, allowUnresolvable: true)
            } catch {
                try fail(key, error.message)
            }
        }
        for channel in notifications?.channels ?? [] {
            for (field, url) in [("url", channel.url), ("baseURL", channel.baseURL)] {
                guard let url else { continue }
                try checkDestination(
                    URLComponents(string: url)?.host, "notifications.channels[\(channel.name)].\(field)",
                    "notification channel")
            }
        }
        for c in mqtt?.clients ?? [] {
            try checkDestination(c.broker.host, "mqtt.clients[\(c.id)].broker.host", "MQTT broker")
        }
        for o in coap?.observations ?? [] {
            let host = URLComponents(string: o.uri)?.host
            try checkDestination(host, "coap.observations[\(o.id)].uri", "CoAP device")
        }
        for t in tenants ?? [] {
            guard TenantID(t.id).isValid else {
                try fail("tenants[\(t.id)].id", "use 1–64 characters of A–Z a–z 0–9 - _")
            }
            if let u = t.unknownDevices, u != "reject", !u.hasPrefix("register:") {
                try fail("tenants[\(t.id)].unknownDevices", "write 'reject' or 'register:<product id>'")
            }
        }
    }
}

struct ConfigurationError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Logger.Level {
    /// The level of a name in any case (`info`, `WARNING`), or `nil`.
    init?(named name: String) { self.init(rawValue: name.lowercased()) }
}
