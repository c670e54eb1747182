public import IoTCore

/// Raises an alarm when a device has sent nothing for longer than its push interval plus a tolerance;
/// clears it on the device's next sample (any signal).
///
/// ```swift
/// // Each meter reports every minute; alarm after 1 min + 30 s of silence.
/// let offline = OfflineRule(id: "offline", devices: .product("meter"), toleranceMillis: 30_000)
/// ```
///
/// The interval is ``intervalMillis`` when set, else the device's ``IoTCore/Device/pushIntervalMillis``
/// (from the `RegistryStore` or ``RuleEngine/updateDevice(_:tenant:)``); a device with neither is not
/// watched. Silence is measured from the device's last point time, or from when the rule started
/// watching it when it has none.
public struct OfflineRule: Sendable, Hashable, Codable {
    /// Unique in the tenant.
    public var id: String
    /// The devices watched.
    public var devices: DeviceSelector
    /// The expected push interval; `nil` uses each device's own.
    public var intervalMillis: Int64?
    /// Extra silence allowed beyond the interval.
    public var toleranceMillis: Int64
    /// Severity of the alarms raised.
    public var severity: AlarmSeverity

    /// Creates an offline rule.
    public init(
        id: String, devices: DeviceSelector, intervalMillis: Int64? = nil, toleranceMillis: Int64 = 0,
        severity: AlarmSeverity = .major
    ) {
        self.id = id
        self.devices = devices
        self.intervalMillis = intervalMillis
        self.toleranceMillis = toleranceMillis
        self.severity = severity
    }
}
