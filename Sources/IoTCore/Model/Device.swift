/// A device registered in a tenant.
public struct Device: Sendable, Hashable, Codable {
    /// The unique id inside the tenant: MQTT client id, HTTP device id, serial number.
    public var uid: String
    /// The product (device type).
    public var product: ProductID
    /// A display name.
    public var name: String
    /// Free key/value labels used by routing and queries (`site=plant-1`).
    public var tags: [String: String]
    /// The department the device belongs to (for data scope).
    public var department: String?
    /// How often the device is expected to report, in milliseconds; offline detection uses it.
    public var pushIntervalMillis: Int64?
    /// Signals of this device in addition to (or overriding) the product's.
    public var signals: [Signal]
    /// When the device was registered (UTC ms).
    public var createdAt: Int64
    /// Whether this device is a gateway (``GatewayScope``); `nil` (the default): as its product says.
    public var gateway: Bool?
    /// What this device may speak for as a gateway; `nil`: as its product says.
    public var gatewayFor: GatewayScope?

    /// Creates a device.
    public init(
        uid: String,
        product: ProductID,
        name: String? = nil,
        tags: [String: String] = [:],
        department: String? = nil,
        pushIntervalMillis: Int64? = nil,
        signals: [Signal] = [],
        createdAt: Int64 = 0,
        gateway: Bool? = nil,
        gatewayFor: GatewayScope? = nil
    ) {
        self.gateway = gateway
        self.gatewayFor = gatewayFor
        self.uid = uid
        self.product = product
        self.name = name ?? uid
        self.tags = tags
        self.department = department
        self.pushIntervalMillis = pushIntervalMillis
        self.signals = signals
        self.createdAt = createdAt
    }

    /// The signals in force for this device: the product's, overridden and extended by the device's own.
    public func effectiveSignals(product: Product?) -> [String: Signal] {
        effectiveSignals(over: Self.signalsByName(product?.signals ?? []))
    }

    /// The device's own signals laid over `base` (its product's signals by name). A device without signals of its
    /// own gets `base` itself, sharing its storage.
    func effectiveSignals(over base: [String: Signal]) -> [String: Signal] {
        var result = base
        for s in signals { result[s.name] = s }
        return result
    }

    /// `signals` by name; a later signal of the same name wins.
    static func signalsByName(_ signals: [Signal]) -> [String: Signal] {
        var result: [String: Signal] = [:]
        result.reserveCapacity(signals.count)
        for s in signals { result[s.name] = s }
        return result
    }
}
