/// One stored sample: (series = device × signal, time, value).
public struct Point: Sendable, Hashable, Codable {
    /// The device (a record's ``DeviceRecord/identificationCode``).
    public var device: String
    /// The signal name.
    public var signal: String
    /// UTC milliseconds.
    public var time: Int64
    /// The value, already converted to the signal's type.
    public var value: SignalValue

    /// Creates a point.
    public init(device: String, signal: String, time: Int64, value: SignalValue) {
        self.device = device
        self.signal = signal
        self.time = time
        self.value = value
    }

    /// The series this point belongs to.
    public var series: SeriesKey { SeriesKey(device: device, signal: signal) }
}

/// A time series: one signal of one device.
public struct SeriesKey: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The device.
    public var device: String
    /// The signal name.
    public var signal: String
    /// Creates a series key.
    public init(device: String, signal: String) {
        self.device = device
        self.signal = signal
    }
    public var description: String { "\(device).\(signal)" }
}
