/// One ingest client as `iotd.yaml` and the management API (`/api/v1/mqtt/clients`) describe it.
///
/// ```yaml
/// id: plant-a
/// tenant: acme
/// broker: { host: 127.0.0.1, port: 1883, clientID: iotd-plant-a, username: iotd, password: secret }
/// subscriptions:
///   - { template: "devices/{uid}/telemetry", qos: 1 }
///   - { filter: "gateways/+/up", qos: 1, parser: senml }
/// ```
public struct MQTTClientSpec: Sendable, Codable, Hashable {
    /// One subscription: a `template` that names the device (its filter is derived) or a plain `filter`.
    public struct SubscriptionSpec: Sendable, Codable, Hashable {
        /// A topic template such as `devices/{uid}/telemetry`.
        public var template: String?
        /// A topic filter; the device is then the client id unless the parser names it.
        public var filter: String?
        /// QoS 0, 1 or 2. Default 1.
        public var qos: Int?
        /// Makes it a shared subscription `$share/<group>/…`.
        public var shareGroup: String?
        /// `json` (default), `senml`, or the name of a registered script parser.
        public var parser: String?

        /// Creates a subscription spec.
        public init(
            template: String? = nil, filter: String? = nil, qos: Int? = nil, shareGroup: String? = nil,
            parser: String? = nil
        ) {
            self.template = template
            self.filter = filter
            self.qos = qos
            self.shareGroup = shareGroup
            self.parser = parser
        }
    }

    /// The manager's name for the client (unique per instance); also the MQTT client id when
    /// `broker.clientID` is empty.
    public var id: String
    /// The tenant of the devices.
    public var tenant: String
    /// The broker connection.
    public var broker: MQTTBrokerConfiguration
    /// What to subscribe to.
    public var subscriptions: [SubscriptionSpec]
    /// Payloads over this are rejected. Default 256 KiB.
    public var maxPayloadBytes: Int?

    /// Creates a spec.
    public init(
        id: String, tenant: String, broker: MQTTBrokerConfiguration, subscriptions: [SubscriptionSpec],
        maxPayloadBytes: Int? = nil
    ) {
        self.id = id
        self.tenant = tenant
        self.broker = broker
        self.subscriptions = subscriptions
        self.maxPayloadBytes = maxPayloadBytes
    }
}
