/// A tenant: an isolation unit with its own database, and the policy for data it does not know yet.
public struct Tenant: Sendable, Hashable, Codable {
    /// The tenant's identifier.
    public var id: TenantID
    /// A display name.
    public var name: String
    /// What the ingestor does with devices and signals it does not know.
    public var policy: IngestPolicy

    /// Creates a tenant.
    public init(id: TenantID, name: String? = nil, policy: IngestPolicy = IngestPolicy()) {
        self.id = id
        self.name = name ?? id.rawValue
        self.policy = policy
    }
}

/// Per-tenant policy for records that name unknown devices or signals.
///
/// The default rejects both, as EdgeX does: a message for an unregistered device is rejected and counted
/// under `rejected{reason="unknown_device"}`. ThingsBoard-style auto-provisioning is
/// `IngestPolicy(unknownDevices: .register(product: "default"), unknownSignals: .register)`.
public struct IngestPolicy: Sendable, Hashable, Codable {
    /// What to do with a record for a device that is not registered.
    public enum UnknownDevices: Sendable, Hashable, Codable {
        /// Reject the whole message.
        case reject
        /// Register the device under `product` and accept the message.
        case register(product: ProductID)
    }
    /// What to do with a value for a signal that neither the product nor the device declares.
    public enum UnknownSignals: String, Sendable, Hashable, Codable {
        /// Reject the whole message.
        case reject
        /// Add the signal to the device, typed from the value, and accept the message.
        case register
        /// Store the known signals and leave the unknown ones out (counted as `ignored_signal`).
        case ignore
    }

    /// Unknown devices; default ``UnknownDevices/reject``.
    public var unknownDevices: UnknownDevices
    /// Unknown signals; default ``UnknownSignals/reject``.
    public var unknownSignals: UnknownSignals

    /// Creates a policy; both default to rejecting.
    public init(unknownDevices: UnknownDevices = .reject, unknownSignals: UnknownSignals = .reject) {
        self.unknownDevices = unknownDevices
        self.unknownSignals = unknownSignals
    }
}
