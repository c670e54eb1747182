public import IoTCore

/// Which devices a rule watches: one device, or every device of a product.
///
/// ```swift
/// let one: DeviceSelector = .device("pump-1")
/// let all: DeviceSelector = .product("pump")
/// ```
public enum DeviceSelector: Sendable, Hashable, Codable {
    /// One device, by uid.
    case device(String)
    /// Every device of a product; the engine learns a device's product from the `RegistryStore` or
    /// from ``RuleEngine/updateDevice(_:tenant:)``.
    case product(ProductID)
}

/// How long a condition must hold before an alarm is raised.
public enum Debounce: Sendable, Hashable, Codable {
    /// `n` consecutive matching samples (`.count(1)`: raise on the first).
    case count(Int)
    /// Matching continuously for `millis`: raised by the first matching sample at or after that long,
    /// or by the engine's timer when no sample arrives.
    case duration(millis: Int64)
}

/// The severity, lifecycle and identity every alarm rule shares are on the rule types; this is the
/// sum of them, what ``RuleEngine/add(_:tenant:)`` takes.
public enum AlarmRule: Sendable {
    /// A range rule.
    case range(RangeRule)
    /// A joint rule.
    case joint(JointRule)
    /// An offline rule.
    case offline(OfflineRule)

    /// The rule's id, unique in its tenant.
    public var id: String {
        switch self {
        case .range(let r): r.id
        case .joint(let r): r.id
        case .offline(let r): r.id
        }
    }
}
