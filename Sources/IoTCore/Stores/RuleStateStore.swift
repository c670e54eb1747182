/// Durable rule state and alarms, so rules survive a restart.
///
/// ## Implementing a rule state store
/// - Rule state is an opaque blob per (tenant, rule id, originator); the engine encodes it. Saving the
///   states of some originators leaves the others' as they are, so instances that evaluate different
///   devices of one rule (see ``ClusterOwnership``) never overwrite each other's state.
/// - ``saveAlarm(_:_:)`` inserts or replaces by ``Alarm/id``. At most one open alarm per (rule,
///   originator): saving a second open alarm with another id throws ``IoTError/Code/conflict``.
/// - ``alarms(_:query:)`` returns newest first (by start time, then id) and honours the scope
///   (an alarm's originator is a device).
/// - A store that can, records an alarm change's event in the same transaction as the alarm
///   (``saveAlarm(_:_:unhandledEvent:)``) until the engine marks it handled, so notifications survive a
///   crash between the two; the defaults record nothing.
/// - Pass `IoTTesting.RuleStateStoreConformance` to check an implementation.
public protocol RuleStateStore: Sendable {
    /// Stores the state of some originators of a rule, each replacing what that originator had; the
    /// other originators' states stay.
    func saveStates(_ scope: AccessScope, ruleID: String, states: [String: [UInt8]]) async throws
    /// The saved states of a rule by originator: of `originators` only, or of every originator when `nil`.
    func states(_ scope: AccessScope, ruleID: String, originators: [String]?) async throws -> [String: [UInt8]]
    /// Deletes every saved state of a rule.
    func deleteStates(_ scope: AccessScope, ruleID: String) async throws

    /// Inserts or replaces an alarm.
    func saveAlarm(_ scope: AccessScope, _ alarm: Alarm) async throws
    /// The open alarm of (rule, originator), or `nil`.
    func openAlarm(_ scope: AccessScope, ruleID: String, originator: String) async throws -> Alarm?
    /// One alarm by id, or `nil`.
    func alarm(_ scope: AccessScope, id: String) async throws -> Alarm?
    /// Alarms matching `query`, newest first.
    func alarms(_ scope: AccessScope, query: AlarmQuery) async throws -> [Alarm]

    /// Saves `alarm` and records `unhandledEvent` in one atomic step; returns the record's id for
    /// ``markAlarmEventHandled(_:id:)``, or `nil` when the store keeps no event records (the default).
    func saveAlarm(_ scope: AccessScope, _ alarm: Alarm, unhandledEvent: UnhandledAlarmEvent) async throws -> Int64?
    /// The recorded events not yet marked handled, oldest first.
    func unhandledAlarmEvents(_ scope: AccessScope) async throws -> [UnhandledAlarmEvent]
    /// Marks a recorded event handled (it is not handed out again).
    func markAlarmEventHandled(_ scope: AccessScope, id: Int64) async throws
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
