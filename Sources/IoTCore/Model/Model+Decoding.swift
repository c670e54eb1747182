// Lenient decoding for the model types people write by hand (configuration files, API bodies): every
// field that has a default in the type's initializer may be left out, with the same default.

extension Signal {
    enum CodingKeys: String, CodingKey { case name, alias, type, unit, cacheSize }

    /// Decodes a signal; only `name` is required (`type` defaults to `number`, `cacheSize` to 0).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try c.decode(String.self, forKey: .name),
            type: try c.decodeIfPresent(SignalType.self, forKey: .type) ?? .number,
            alias: try c.decodeIfPresent(String.self, forKey: .alias),
            unit: try c.decodeIfPresent(String.self, forKey: .unit),
            cacheSize: try c.decodeIfPresent(Int.self, forKey: .cacheSize) ?? 0)
    }
}

extension Product {
    enum CodingKeys: String, CodingKey { case id, name, signals, parser, description, gateway, gatewayFor }

    /// Decodes a product; only `id` is required.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(ProductID.self, forKey: .id),
            name: try c.decodeIfPresent(String.self, forKey: .name),
            signals: try c.decodeIfPresent([Signal].self, forKey: .signals) ?? [],
            parser: try c.decodeIfPresent(String.self, forKey: .parser),
            description: try c.decodeIfPresent(String.self, forKey: .description),
            gateway: try c.decodeIfPresent(Bool.self, forKey: .gateway) ?? false,
            gatewayFor: try c.decodeIfPresent(GatewayScope.self, forKey: .gatewayFor))
    }
}

extension Device {
    enum CodingKeys: String, CodingKey {
        case uid, product, name, tags, department, pushIntervalMillis, signals, createdAt, gateway, gatewayFor
    }

    /// Decodes a device; only `uid` and `product` are required.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            uid: try c.decode(String.self, forKey: .uid),
            product: try c.decode(ProductID.self, forKey: .product),
            name: try c.decodeIfPresent(String.self, forKey: .name),
            tags: try c.decodeIfPresent([String: String].self, forKey: .tags) ?? [:],
            department: try c.decodeIfPresent(String.self, forKey: .department),
            pushIntervalMillis: try c.decodeIfPresent(Int64.self, forKey: .pushIntervalMillis),
            signals: try c.decodeIfPresent([Signal].self, forKey: .signals) ?? [],
            createdAt: try c.decodeIfPresent(Int64.self, forKey: .createdAt) ?? 0,
            gateway: try c.decodeIfPresent(Bool.self, forKey: .gateway),
            gatewayFor: try c.decodeIfPresent(GatewayScope.self, forKey: .gatewayFor))
    }
}

extension Tenant {
    enum CodingKeys: String, CodingKey { case id, name, policy, status, quotas }

    /// Decodes a tenant; only `id` is required (the policy defaults to rejecting unknown data, the status to
    /// active, the quotas to none).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(TenantID.self, forKey: .id),
            name: try c.decodeIfPresent(String.self, forKey: .name),
            policy: try c.decodeIfPresent(IngestPolicy.self, forKey: .policy) ?? IngestPolicy(),
            status: try c.decodeIfPresent(Status.self, forKey: .status) ?? .active,
            quotas: try c.decodeIfPresent(TenantQuotas.self, forKey: .quotas) ?? TenantQuotas())
    }
}
