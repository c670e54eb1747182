public import IoTCore

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
    public var broker: MQTTClient.Configuration
    /// What to subscribe to.
    public var subscriptions: [SubscriptionSpec]
    /// Payloads over this are rejected. Default 256 KiB.
    public var maxPayloadBytes: Int?

    /// Creates a spec.
    public init(
        id: String, tenant: String, broker: MQTTClient.Configuration, subscriptions: [SubscriptionSpec],
        maxPayloadBytes: Int? = nil
    ) {
        self.id = id
        self.tenant = tenant
        self.broker = broker
        self.subscriptions = subscriptions
        self.maxPayloadBytes = maxPayloadBytes
    }

    /// The transport configuration; `parsers` resolves script parser names.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the field that is wrong.
    public func transportConfiguration(parsers: ParserRegistry?) throws(IoTError) -> MQTTTransport.Configuration {
        guard !id.isEmpty, id.count <= 128, !id.contains("/") else {
            throw IoTError(.invalidArgument, "id: use 1–128 characters without '/'")
        }
        guard TenantID(tenant).isValid else {
            throw IoTError(.invalidArgument, "tenant '\(tenant)' is not a valid tenant id")
        }
        guard !subscriptions.isEmpty else { throw IoTError(.invalidArgument, "subscriptions: name at least one") }
        var client = broker
        if client.clientID.isEmpty { client.clientID = id }
        try client.validate()
        var subs: [MQTTTransport.Subscription] = []
        for (i, s) in subscriptions.enumerated() {
            let parser: any Parser
            switch s.parser ?? "json" {
            case "json": parser = JSONParser()
            case "senml": parser = SenMLParser()
            case let name:
                guard let p = parsers?.parser(named: name) else {
                    throw IoTError(
                        .invalidArgument,
                        "subscriptions[\(i)].parser: '\(name)' is not json, senml or a registered parser")
                }
                parser = p
            }
            let qos = s.qos ?? 1
            guard (0...2).contains(qos) else {
                throw IoTError(.invalidArgument, "subscriptions[\(i)].qos: use 0, 1 or 2")
            }
            switch (s.template, s.filter) {
            case (let t?, nil):
                subs.append(try .init(template: t, qos: qos, shareGroup: s.shareGroup, parser: parser))
            case (nil, let f?):
                subs.append(.init(filter: s.shareGroup.map { "$share/\($0)/\(f)" } ?? f, qos: qos, parser: parser))
            case (let t?, let f?):
                subs.append(.init(filter: f, qos: qos, template: try TopicTemplate(t), parser: parser))
            case (nil, nil):
                throw IoTError(
                    .invalidArgument, "subscriptions[\(i)]: give a template (devices/{uid}/telemetry) or a filter")
            }
        }
        let max = maxPayloadBytes ?? 256 * 1024
        guard max > 0 else { throw IoTError(.invalidArgument, "maxPayloadBytes must be positive") }
        return .init(client: client, tenant: TenantID(tenant), subscriptions: subs, maxPayloadBytes: max)
    }
}
