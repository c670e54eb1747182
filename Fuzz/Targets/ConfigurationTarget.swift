import Foundation
import IoTCore
import IoTPlatform
import IoTProtocols
import IoTRules
import IoTYAML
import Yams

#if canImport(Glibc)
    import Glibc
#endif

extension FuzzTarget {
    /// The configuration decoder: iotd's own `PlatformConfiguration` (IoTPlatform) through the strict decoder,
    /// as iotd reads its file; and, with Yams' `YAMLDecoder`, a document of the same shape holding the
    /// library types iotd.yaml is made of (``FuzzedConfiguration``), then the checks iotd runs on them:
    /// each type's `validate()`, the MQTT client's transport configuration, the TCP listener configuration, the
    /// rate limit, the broker account policy and the outbound policy (for address literals: a name would be
    /// looked up in DNS). A document that starts with `{` is also decoded with Foundation's `JSONDecoder`, as the
    /// management API reads the same types.
    public static func fuzzConfiguration(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        // As iotd reads its file: composed, base-60 integers made harmless (SafeYAML), then decoded.
        if let node = try? SafeYAML.compose(text) {
            if let configuration = try? YAMLDecoder().decode(FuzzedConfiguration.self, from: node) {
                configuration.check()
            }
            // As iotd decodes its file since session 12: IoTPlatform's PlatformConfiguration, every key checked
            // (StrictYAMLDecoder). Not its validate(): that reads TLS files and resolves host names.
            _ = try? StrictYAMLDecoder.decode(PlatformConfiguration.self, from: node)
        }
        if data.first == UInt8(ascii: "{"),
            let configuration = try? JSONDecoder().decode(FuzzedConfiguration.self, from: Data(data))
        {
            configuration.check()
        }
    }
}

/// The parts of iotd.yaml whose types are the libraries' (the keys are iotd's; the rest is left out).
struct FuzzedConfiguration: Decodable {
    struct Ingest: Decodable {
        var rateLimit: String?
    }
    struct Listener: Decodable {
        var rateLimit: String?
        var limits: ListenerLimits?
    }
    struct CoAP: Decodable {
        var observations: [CoAPObservationSpec]?
    }
    struct Modbus: Decodable {
        var devices: [ModbusDevice]?
    }
    struct TCP: Decodable {
        var host: String?
        var port: Int
        var framing: String?
        var maxFrameBytes: Int?
        var idleTimeoutMillis: Int64?
        var handshakeTimeoutMillis: Int64?
        var maxConnections: Int?
        var maxConnectionsPerAddress: Int?
    }
    struct MQTT: Decodable {
        var limits: MQTTClientManager.Limits?
        var clients: [MQTTClientSpec]?
    }
    struct BrokerAccounts: Decodable {
        var username: String?
        var clientID: String?
        var publish: [String]?
        var subscribe: [String]?
        var tenants: [String]?
    }
    struct TenantNotifications: Decodable {
        var templates: [NotificationTemplate]?
        var policies: [RoutingPolicy]?
    }
    struct Tenant: Decodable {
        var id: String
        var unknownSignals: IngestPolicy.UnknownSignals?
        var products: [Product]?
        var devices: [Device]?
        var rules: [AlarmRule]?
        var statistics: [StatisticsJob]?
        var notifications: TenantNotifications?
    }

    var ingest: Ingest?
    var http: Listener?
    var websocket: Listener?
    var management: Listener?
    var coap: CoAP?
    var modbus: Modbus?
    var tcp: [TCP]?
    var mqtt: MQTT?
    var brokerAccounts: BrokerAccounts?
    var outbound: OutboundPolicy?
    var tenants: [Tenant]?

    /// Runs the checks iotd runs on these parts; every error is expected and dropped.
    func check() {
        for spec in [ingest?.rateLimit, http?.rateLimit].compactMap({ $0 }) {
            _ = try? RateLimit(parsing: spec)
        }
        for limits in [http?.limits, websocket?.limits, management?.limits].compactMap({ $0 }) {
            try? limits.validate()
        }
        for t in tcp ?? [] {
            var c = TCPTransport.Configuration(port: t.port)
            if let v = t.host { c.host = v }
            if let v = t.framing.flatMap(TCPTransport.Framing.init(rawValue:)) { c.framing = v }
            if let v = t.maxFrameBytes { c.maxFrameBytes = v }
            if let v = t.idleTimeoutMillis { c.idleTimeout = .milliseconds(v) }
            if let v = t.handshakeTimeoutMillis { c.handshakeTimeout = .milliseconds(v) }
            if let v = t.maxConnections { c.maxConnections = v }
            if let v = t.maxConnectionsPerAddress { c.maxConnectionsPerAddress = v }
            try? c.validate()
        }
        for device in modbus?.devices ?? [] { try? device.validate() }
        let policy = outbound ?? OutboundPolicy()
        for client in mqtt?.clients ?? [] {
            _ = try? client.transportConfiguration(parsers: nil)
            checkDestination(client.broker.host, policy)
        }
        for observation in coap?.observations ?? [] {
            try? observation.validate()
            checkDestination(URLComponents(string: observation.uri)?.host, policy)
        }
        if let accounts = brokerAccounts {
            let broker = BrokerAccountPolicy(
                usernameTemplate: accounts.username ?? "{uid}", clientIDTemplate: accounts.clientID,
                publishTopics: accounts.publish ?? ["devices/{uid}/telemetry"],
                subscribeTopics: accounts.subscribe ?? ["devices/{uid}/downlink/#"],
                tenants: accounts.tenants.map { Set($0.map { TenantID($0) }) })
            if (try? broker.validate()) != nil {
                let device = DeviceIdentity(tenant: TenantID("t1"), deviceUID: "dev-1")
                let username = broker.username(for: device)
                _ = broker.device(forUsername: username)
                _ = broker.clientID(for: device)
                _ = broker.permits(device, .publish, topic: "devices/dev-1/telemetry")
            }
        }
        for tenant in tenants ?? [] {
            _ = TenantID(tenant.id).isValid
            for rule in tenant.rules ?? [] { try? rule.validate() }
            for job in tenant.statistics ?? [] { try? job.validate() }
            for template in tenant.notifications?.templates ?? [] { try? template.validate() }
        }
    }

    /// The outbound policy's check, for an address literal only (a name would be resolved through DNS).
    private func checkDestination(_ host: String?, _ policy: OutboundPolicy) {
        guard let host, !host.isEmpty else { return }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr()
        var v6 = in6_addr()
        guard inet_pton(AF_INET, bare, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1 else { return }
        try? policy.check(host: host, what: "fuzzed destination", allowUnresolvable: true)
    }
}
