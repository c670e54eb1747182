/// A named measurement of a device: temperature, door state, firmware version.
///
/// A product declares its default signals; a device may add its own. A point's series is
/// (device, signal name).
public struct Signal: Sendable, Hashable, Codable {
    /// The name used in payloads and queries (`temp`). Case-sensitive.
    public var name: String
    /// A human-readable name (`Supply air temperature`).
    public var alias: String?
    /// The type values are converted to before they are stored.
    public var type: SignalType
    /// The unit, for display (`°C`).
    public var unit: String?
    /// How many recent values rules keep in memory for this signal (0 = none).
    public var cacheSize: Int

    /// Creates a signal.
    public init(name: String, type: SignalType = .number, alias: String? = nil, unit: String? = nil, cacheSize: Int = 0)
    {
        self.name = name
        self.alias = alias
        self.type = type
        self.unit = unit
        self.cacheSize = cacheSize
    }
}
