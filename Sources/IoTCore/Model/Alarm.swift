/// How serious an alarm is, from most to least.
public enum AlarmSeverity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case critical, major, minor, warning, info

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    /// `critical` is the greatest.
    public static func < (lhs: AlarmSeverity, rhs: AlarmSeverity) -> Bool { lhs.rank > rhs.rank }
}

/// An alarm raised by a rule for an originator (usually a device).
///
/// Its status is two independent flags, as in ThingsBoard: active or cleared, and acknowledged or not.
/// There is at most one open alarm (not both cleared and acknowledged) per (rule, originator).
public struct Alarm: Sendable, Hashable, Codable {
    /// Unique id.
    public var id: String
    /// The rule that raised it.
    public var ruleID: String
    /// What it is about: a device uid.
    public var originator: String
    /// Severity at the last raise.
    public var severity: AlarmSeverity
    /// `true` until the condition clears.
    public var active: Bool
    /// `true` once someone acknowledged it.
    public var acknowledged: Bool
    /// When it was raised (UTC ms).
    public var startTime: Int64
    /// When it was acknowledged.
    public var ackTime: Int64?
    /// When it cleared.
    public var clearTime: Int64?
    /// How many times the condition was met while the alarm was open.
    public var occurrences: Int
    /// The value that last met the condition.
    public var lastValue: SignalValue?
    /// Free text details (rule-specific).
    public var details: String?

    /// Whether the alarm is still open: active, or cleared but not yet acknowledged.
    public var isOpen: Bool { active || !acknowledged }

    /// Creates an alarm.
    public init(
        id: String, ruleID: String, originator: String, severity: AlarmSeverity, active: Bool = true,
        acknowledged: Bool = false, startTime: Int64, ackTime: Int64? = nil, clearTime: Int64? = nil,
        occurrences: Int = 1, lastValue: SignalValue? = nil, details: String? = nil
    ) {
        self.id = id
        self.ruleID = ruleID
        self.originator = originator
        self.severity = severity
        self.active = active
        self.acknowledged = acknowledged
        self.startTime = startTime
        self.ackTime = ackTime
        self.clearTime = clearTime
        self.occurrences = occurrences
        self.lastValue = lastValue
        self.details = details
    }
}
