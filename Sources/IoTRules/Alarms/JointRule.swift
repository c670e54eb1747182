public import IoTCore

/// Raises an alarm when a condition over several named parameters holds.
///
/// Each parameter reduces a window of one device's signal to a number. The condition sees every
/// parameter by name (`nil` when its window has no numeric value, or when a duration window has not
/// been watched for its full length yet). It is evaluated on each new sample of a parameter and every
/// ``evaluationIntervalMillis`` of clock time, so conditions about silence and elapsed time work:
///
/// ```swift
/// // No data from the sensor for 5 minutes.
/// let silent = JointRule(id: "silent", parameters: [
///     .init(name: "n", device: "sensor-1", signal: "temp", window: .duration(millis: 300_000), reducer: .count),
/// ], severity: .warning, evaluationIntervalMillis: 10_000) { p in p["n"]! == 0 }
///
/// // A door (1 = open, reported on change) open for longer than 10 minutes.
/// let door = JointRule(id: "door-open", parameters: [
///     .init(name: "open", device: "door-1", signal: "open", window: .count(1), reducer: .last),
///     .init(name: "changes", device: "door-1", signal: "open", window: .duration(millis: 600_000), reducer: .count),
/// ], severity: .major, evaluationIntervalMillis: 10_000) { p in p["open"]! == 1 && p["changes"]! == 0 }
/// ```
///
/// The alarm is raised when the condition becomes true and cleared when it becomes false; a condition
/// that fails (a script error) changes nothing, and is logged and counted.
public struct JointRule: Sendable, Codable {
    /// One named input of the condition.
    public struct Parameter: Sendable, Hashable, Codable {
        /// The name the condition reads.
        public var name: String
        /// The device; empty in a rule over every device of a product (``JointRule/product``) for the device
        /// being evaluated.
        public var device: String
        /// The signal.
        public var signal: String
        /// Which samples count.
        public var window: Window
        /// How they become one number.
        public var reducer: Reducer

        /// Creates a parameter.
        public init(name: String, device: String, signal: String, window: Window = .count(1), reducer: Reducer = .last)
        {
            self.name = name
            self.device = device
            self.signal = signal
            self.window = window
            self.reducer = reducer
        }

        private enum CodingKeys: String, CodingKey { case name, device, signal, window, reducer }

        /// Reads a parameter; `device` may be left out in a rule over a product (each device's own).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                name: try c.decode(String.self, forKey: .name),
                device: try c.decodeIfPresent(String.self, forKey: .device) ?? "",
                signal: try c.decode(String.self, forKey: .signal),
                window: try c.decodeIfPresent(Window.self, forKey: .window) ?? .count(1),
                reducer: try c.decodeIfPresent(Reducer.self, forKey: .reducer) ?? .last)
        }
    }

    /// Unique in the tenant.
    public var id: String
    /// The inputs.
    public var parameters: [Parameter]
    /// With a product, the rule applies to every device of it, each on its own: a parameter without a
    /// device reads the device being evaluated, and that device is the alarm's originator. `nil` (the default):
    /// the rule is about the devices its parameters name.
    public var product: ProductID?
    /// When to alarm.
    public var condition: Condition
    /// Severity of the alarms raised.
    public var severity: AlarmSeverity
    /// The alarm's originator; the first parameter's device when `nil`.
    public var originator: String?
    /// Also evaluate on a timer this often (clock time); `nil` evaluates on samples only.
    public var evaluationIntervalMillis: Int64?
    /// How long the condition must hold before the alarm is raised: for `count` evaluations in a row, or for
    /// `durationMillis` of clock time (seen by an evaluation, so give ``evaluationIntervalMillis`` when
    /// samples are rare). `nil` (the default) raises on the first evaluation that holds. An evaluation that
    /// does not hold starts it over; counting starts over after a restart too.
    public var debounce: Debounce?

    /// Creates a joint rule with a condition.
    public init(
        id: String, parameters: [Parameter], condition: Condition, severity: AlarmSeverity = .major,
        originator: String? = nil, evaluationIntervalMillis: Int64? = nil, debounce: Debounce? = nil,
        product: ProductID? = nil
    ) {
        self.id = id
        self.parameters = parameters
        self.product = product
        self.condition = condition
        self.severity = severity
        self.originator = originator
        self.evaluationIntervalMillis = evaluationIntervalMillis
        self.debounce = debounce
    }

    /// Creates a joint rule whose condition is a Swift closure.
    public init(
        id: String, parameters: [Parameter], severity: AlarmSeverity = .major, originator: String? = nil,
        evaluationIntervalMillis: Int64? = nil, debounce: Debounce? = nil, product: ProductID? = nil,
        condition: @escaping @Sendable ([String: Double?]) -> Bool
    ) {
        self.init(
            id: id, parameters: parameters, condition: .closure(condition), severity: severity,
            originator: originator, evaluationIntervalMillis: evaluationIntervalMillis, debounce: debounce,
            product: product)
    }

    /// The alarm's originator.
    public var effectiveOriginator: String { originator ?? parameters.first?.device ?? id }

    /// The rule as it applies to `device` of its product: parameters without a device read `device`, which is
    /// the originator.
    public func bound(to device: String) -> JointRule {
        var rule = self
        rule.product = nil
        rule.originator = device
        for i in rule.parameters.indices where rule.parameters[i].device.isEmpty { rule.parameters[i].device = device }
        return rule
    }
}

/// A joint rule's condition: a Swift closure, or a script function run by a ``IoTCore/ScriptEngine``.
///
/// A script condition calls `function` with one argument, an object of the parameters by name
/// (`null` when a parameter has no value), and reads the result as a boolean: `true`, or a non-zero
/// number. Any other result, or a script error, fails that evaluation.
///
/// ```swift
/// let c: Condition = .script(language: "lua", source: "function check(p) return p.t > 30 and p.h > 80 end",
///                            function: "check")
/// ```
///
/// Only script conditions can be encoded (closures cannot): encoding a closure throws.
public enum Condition: Sendable, Codable {
    /// A Swift closure over the parameters by name.
    case closure(@Sendable ([String: Double?]) -> Bool)
    /// A script: `language` picks one of the engine's ``IoTCore/ScriptEngine``s.
    case script(language: String, source: String, function: String)

    /// Decodes a script condition.
    public init(from decoder: any Decoder) throws {
        let script = try ScriptCoding.decode(from: decoder, defaultFunction: "condition")
        self = .script(language: script.language, source: script.source, function: script.function)
    }

    /// Encodes a script condition; throws for a closure.
    public func encode(to encoder: any Encoder) throws {
        guard case .script(let language, let source, let function) = self else {
            throw ScriptCoding.closureError(self, "condition", encoder)
        }
        try ScriptCoding.encode(language: language, source: source, function: function, to: encoder)
    }
}
