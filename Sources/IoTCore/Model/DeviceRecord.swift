/// The unified result of every parser: what one device reported at one time.
///
/// ```swift
/// let record = DeviceRecord(deviceUID: "gw-1", identificationCode: "sensor-7",
///                           time: 1_700_000_000_123, values: ["temp": .number(21.5)])
/// ```
public struct DeviceRecord: Sendable, Hashable {
    /// The connected unit that sent the message (MQTT client id, HTTP/CoAP device, TCP session).
    public var deviceUID: String
    /// The device behind it. Equals ``deviceUID`` unless a gateway or wildcard topic fans out to many
    /// devices; this is the device the values are stored under.
    public var identificationCode: String
    /// Device time in UTC milliseconds, or `nil` to have the ingestor stamp server time.
    public var time: Int64?
    /// Signal name → value, as the payload carried them (conversion happens in the ingestor).
    public var values: [String: SignalValue]
    /// The payload this record came from, kept for debugging when a transport asks for it.
    public var raw: [UInt8]?
    /// Signal name → unit, where the payload names one (SenML's `u` and `bu`). A signal registered on first
    /// use (``IngestPolicy/unknownSignals`` `register`) gets this unit; a declared signal keeps its own.
    public var units: [String: String]

    /// Creates a record. `identificationCode` defaults to `deviceUID`.
    public init(
        deviceUID: String,
        identificationCode: String? = nil,
        time: Int64? = nil,
        values: [String: SignalValue],
        raw: [UInt8]? = nil,
        units: [String: String] = [:]
    ) {
        self.deviceUID = deviceUID
        self.identificationCode = identificationCode ?? deviceUID
        self.time = time
        self.values = values
        self.raw = raw
        self.units = units
    }
}
