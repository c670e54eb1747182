/// Durable rule state and alarms, so rules survive a restart.
///
/// ## Implementing a rule state store
/// - Rule state is an opaque blob per (tenant, rule id); the engine encodes it.
/// - ``saveAlarm(_:_:)`` inserts or replaces by ``Alarm/id``. At most one open alarm per (rule,
///   originator): saving a second open alarm with another id throws ``IoTError/Code/conflict``.
/// - ``alarms(_:query:)`` returns newest first (by start time, then id) and honours the scope
///   (an alarm's originator is a device).
/// - Pass `IoTTesting.RuleStateStoreConformance` to check an implementation.
public protocol RuleStateStore: Sendable {
    /// Stores a rule's state, replacing what was there.
    func saveState(_ scope: AccessScope, ruleID: String, state: [UInt8]) async throws
    /// A rule's state, or `nil`.
    func state(_ scope: AccessScope, ruleID: String) async throws -> [UInt8]?
    /// Deletes a rule's state.
    func deleteState(_ scope: AccessScope, ruleID: String) async throws

    /// Inserts or replaces an alarm.
    func saveAlarm(_ scope: AccessScope, _ alarm: Alarm) async throws
    /// The open alarm of (rule, originator), or `nil`.
    func openAlarm(_ scope: AccessScope, ruleID: String, originator: String) async throws -> Alarm?
    /// One alarm by id, or `nil`.
    func alarm(_ scope: AccessScope, id: String) async throws -> Alarm?
    /// Alarms matching `query`, newest first.
    func alarms(_ scope: AccessScope, query: AlarmQuery) async throws -> [Alarm]
}

/// A filter for alarm listings.
public struct AlarmQuery: Sendable, Hashable {
    /// Only this rule's alarms.
    public var ruleID: String?
    /// Only this originator's alarms.
    public var originator: String?
    /// Only open (`true`) or closed (`false`) alarms.
    public var open: Bool?
    /// Only alarms started at or after this time.
    public var from: Int64?
    /// Only alarms started before this time.
    public var to: Int64?
    /// At most this many.
    public var limit: Int?

    /// Creates a query; every field defaults to "no filter".
    public init(
        ruleID: String? = nil, originator: String? = nil, open: Bool? = nil, from: Int64? = nil, to: Int64? = nil,
        limit: Int? = nil
    ) {
        self.ruleID = ruleID
        self.originator = originator
        self.open = open
        self.from = from
        self.to = to
        self.limit = limit
    }
}
