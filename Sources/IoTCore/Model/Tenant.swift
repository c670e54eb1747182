/// A tenant: an isolation unit with its own database, the policy for data it does not know yet, whether it
/// is suspended, and its quotas.
public struct Tenant: Sendable, Hashable, Codable {
    /// Whether a tenant's devices and users are served.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Served.
        case active
        /// Its devices are refused (`forbidden`, saying so) and its users and keys get 403; its data is kept.
        case suspended
    }

    /// The tenant's identifier.
    public var id: TenantID
    /// A display name.
    public var name: String
    /// What the ingestor does with devices and signals it does not know.
    public var policy: IngestPolicy
    /// Whether the tenant is served. Default ``Status/active``.
    public var status: Status
    /// Its limits; none by default.
    public var quotas: TenantQuotas

    /// Creates a tenant.
    public init(
        id: TenantID, name: String? = nil, policy: IngestPolicy = IngestPolicy(), status: Status = .active,
        quotas: TenantQuotas = TenantQuotas()
    ) {
        self.id = id
        self.name = name ?? id.rawValue
        self.policy = policy
        self.status = status
        self.quotas = quotas
    }
}

/// What one tenant may hold and send; each limit is `nil` for none. Going over a limit is refused with the
/// quota's name: 403 for what the tenant holds (devices, signals, MQTT clients), 429 for points per day.
public struct TenantQuotas: Sendable, Hashable, Codable {
    /// Devices registered (through the API, or by auto-registration at ingest).
    public var devices: Int?
    /// Signals of a product or of a device's own.
    public var signals: Int?
    /// Points accepted per UTC day (counted by the ingestor since it started).
    public var pointsPerDay: Int?
    /// MQTT ingest clients.
    public var mqttClients: Int?

    /// Creates quotas; each is `nil` for no limit.
    public init(devices: Int? = nil, signals: Int? = nil, pointsPerDay: Int? = nil, mqttClients: Int? = nil) {
        self.devices = devices
        self.signals = signals
        self.pointsPerDay = pointsPerDay
        self.mqttClients = mqttClients
    }

    /// Whether no limit is set.
    public var isEmpty: Bool { devices == nil && signals == nil && pointsPerDay == nil && mqttClients == nil }

    /// Checks that every limit is at least 0.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the quota.
    public func validate() throws(IoTError) {
        for (name, value) in [
            ("devices", devices), ("signals", signals), ("pointsPerDay", pointsPerDay), ("mqttClients", mqttClients),
        ] {
            if let value, value < 0 {
                throw IoTError(
                    .invalidArgument, "quotas.\(name): \(value) is negative; give 0 or more, or leave it out")
            }
        }
    }

    /// The error of going over the quota `name` of `tenant`.
    public static func exceeded(_ name: String, limit: Int, tenant: TenantID) -> IoTError {
        IoTError(
            name == "pointsPerDay" ? .rateLimited : .forbidden,
            "tenant \"\(tenant)\" is at its quota \(name) (\(limit)); ask the platform's administrators to raise it")
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
