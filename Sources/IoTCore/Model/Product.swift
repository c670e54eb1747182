/// A product: a device type with default signals and the parser its messages go through.
public struct Product: Sendable, Hashable, Codable {
    /// The product's identifier inside its tenant.
    public var id: ProductID
    /// A display name.
    public var name: String
    /// The signals every device of this product has.
    public var signals: [Signal]
    /// The name of the parser for this product's messages (`json`, `senml`, or a script parser's name);
    /// `nil` lets the transport choose.
    public var parser: String?
    /// Free text.
    public var description: String?
    /// Whether this product's devices are gateways, which may send records for other devices of the tenant
    /// (``GatewayScope``). Default `false`: a device speaks only for itself.
    public var gateway: Bool
    /// What this product's gateways may speak for; `nil`: any device of the tenant.
    public var gatewayFor: GatewayScope?

    /// Creates a product.
    public init(
        id: ProductID, name: String? = nil, signals: [Signal] = [], parser: String? = nil, description: String? = nil,
        gateway: Bool = false, gatewayFor: GatewayScope? = nil
    ) {
        self.gateway = gateway
        self.gatewayFor = gatewayFor
        self.id = id
        self.name = name ?? id.rawValue
        self.signals = signals
        self.parser = parser
        self.description = description
    }
}
