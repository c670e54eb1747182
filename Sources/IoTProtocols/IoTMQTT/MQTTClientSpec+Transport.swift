public import IoTCore

extension MQTTClientSpec {
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
