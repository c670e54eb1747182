/// Creates and removes device accounts at an MQTT broker.
///
/// Devices that speak MQTT authenticate to the broker, not to the platform, so the platform provisions
/// them there: a username and password per device and the topics it may use (see
/// ``BrokerAccountPolicy``). The Mosquitto default, `IoTProtocols.DynamicSecurityProvisioner`, pushes
/// them to Mosquitto's dynamic-security plugin; an EMQX broker asks the platform instead (see
/// ``BrokerAccessControl``) and needs no provisioner.
///
/// Wrap the ``TokenIssuer`` in a ``ProvisioningTokenIssuer`` and every issued token becomes the device's
/// broker password, every revocation removes the device at the broker.
///
/// ## Implementing a provisioner
/// - Both calls are idempotent: ``provision(_:password:)`` creates the account or replaces its password
///   and topic rules; ``revoke(_:)`` of a device the broker does not know succeeds.
/// - ``revoke(_:)`` also disconnects the device's live sessions, so a revoked device stops at once.
/// - A device of a tenant the broker does not serve (``BrokerAccountPolicy/tenants``) is left alone:
///   both calls return without contacting the broker.
/// - Refuse a device whose uid cannot be used in a topic (``BrokerAccountPolicy/validate(_:)``) with
///   ``IoTError/Code/invalidArgument``; report an unreachable or refusing broker as
///   ``IoTError/Code/unavailable`` (or ``IoTError/Code/timeout``) with the broker's own words.
public protocol BrokerProvisioner: Sendable {
    /// A short name for messages and logs, e.g. `"mosquitto local"`.
    var name: String { get }
    /// Creates the device's account at the broker, or replaces its password and topic rules.
    func provision(_ device: DeviceIdentity, password: String) async throws(IoTError)
    /// Removes the device's account at the broker and disconnects its sessions.
    func revoke(_ device: DeviceIdentity) async throws(IoTError)
}
