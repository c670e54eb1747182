public import IoTCore

/// Raises an alarm when a signal is inside or outside `[min, max]`.
///
/// ```swift
/// // Alarm when a pump runs hotter than 80 °C for 3 samples in a row; clear below 78 °C.
/// let overheat = RangeRule(id: "overheat", devices: .product("pump"), signal: "temp",
///                          max: 80, alarmWhen: .outside, severity: .major,
///                          debounce: .count(3), hysteresis: 2)
/// ```
///
/// - Matching: `.outside` matches `value < min` or `value > max`; `.inside` matches
///   `min <= value <= max`. A missing bound is open (`max: 80` alone is "above 80").
/// - Raise: after ``debounce`` is satisfied. While the alarm is active every matching sample counts
///   an occurrence and becomes its last value (no event).
/// - Clear: when the value moves back past a bound by at least ``hysteresis`` (for `.outside` with
///   `max: 80, hysteresis: 2`, at 78 or below). Values in between change nothing, so a value flapping
///   around the bound does not flap the alarm.
/// - Text samples never match.
public struct RangeRule: Sendable, Hashable, Codable {
    /// When a value matches.
    public enum AlarmWhen: String, Sendable, Hashable, Codable {
        /// `min <= value <= max`.
        case inside
        /// `value < min` or `value > max`.
        case outside
    }

    /// Unique in the tenant.
    public var id: String
    /// The devices watched.
    public var devices: DeviceSelector
    /// The signal watched.
    public var signal: String
    /// Lower bound, or `nil` for none.
    public var min: Double?
    /// Upper bound, or `nil` for none.
    public var max: Double?
    /// Alarm inside or outside the bounds.
    public var alarmWhen: AlarmWhen
    /// Severity of the alarms raised.
    public var severity: AlarmSeverity
    /// How long the condition must hold before raising.
    public var debounce: Debounce
    /// How far back past a bound the value must move to clear (≥ 0).
    public var hysteresis: Double

    /// Creates a range rule.
    public init(
        id: String, devices: DeviceSelector, signal: String, min: Double? = nil, max: Double? = nil,
        alarmWhen: AlarmWhen = .outside, severity: AlarmSeverity = .major, debounce: Debounce = .count(1),
        hysteresis: Double = 0
    ) {
        self.id = id
        self.devices = devices
        self.signal = signal
        self.min = min
        self.max = max
        self.alarmWhen = alarmWhen
        self.severity = severity
        self.debounce = debounce
        self.hysteresis = hysteresis
    }
}
