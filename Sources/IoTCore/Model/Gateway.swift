/// The devices a gateway may speak for: a device whose records name other devices of its tenant (the JSON
/// gateway form, SenML `bn`, a script's `identificationCode`, a go-iot-platform gateway script) must be a
/// gateway (``Product/gateway`` or ``Device/gateway``), and each device it names must be in its scope.
///
/// ```swift
/// // A Modbus-to-MQTT gateway that reports its meters, and nothing else:
/// Product(id: "edge-gw", gateway: true, gatewayFor: GatewayScope(products: ["meter"]))
/// ```
public struct GatewayScope: Sendable, Hashable, Codable {
    /// The products whose devices the gateway may speak for; `nil`: not limited by product.
    public var products: [ProductID]?
    /// The device uids the gateway may speak for; `nil`: not limited by uid.
    public var devices: [String]?

    /// Creates a scope; with neither list the gateway may speak for any device of its tenant.
    public init(products: [ProductID]? = nil, devices: [String]? = nil) {
        self.products = products
        self.devices = devices
    }

    /// Whether a gateway with this scope may speak for device `uid` of product `product` (`nil` for a device
    /// that does not exist yet and would be registered under the tenant's auto-registration product).
    public func permits(device uid: String, product: ProductID?) -> Bool {
        if products == nil && devices == nil { return true }
        if let devices, devices.contains(uid) { return true }
        if let products, let product, products.contains(product) { return true }
        return false
    }
}

extension Device {
    /// What this device may speak for as a gateway, or `nil` when it is not one: ``gateway`` (else the
    /// product's ``Product/gateway``) decides whether it is, ``gatewayFor`` (else the product's) the scope.
    public func gatewayScope(product: Product?) -> GatewayScope? {
        guard gateway ?? product?.gateway ?? false else { return nil }
        return gatewayFor ?? product?.gatewayFor ?? GatewayScope()
    }
}
