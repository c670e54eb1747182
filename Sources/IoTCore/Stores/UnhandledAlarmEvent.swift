/// An alarm change that was stored together with its event, before the event's handlers (the
/// notifications) had all run. The rule engine marks it handled afterwards; what is left unmarked when a
/// process dies is handed to the handlers again at the next start, so a crash between storing an alarm
/// change and enqueueing its notifications loses nothing (it may notify twice).
public struct UnhandledAlarmEvent: Sendable, Hashable {
    /// Given by the store when the event is recorded; `0` before.
    public var id: Int64
    /// `raised`, `cleared` or `acknowledged` (the rule engine's event kinds).
    public var kind: String
    /// The tenant.
    public var tenant: TenantID
    /// The alarm after the change.
    public var alarm: Alarm
    /// When it happened (UTC ms).
    public var time: Int64

    /// Creates an event record.
    public init(id: Int64 = 0, kind: String, tenant: TenantID, alarm: Alarm, time: Int64) {
        self.id = id
        self.kind = kind
        self.tenant = tenant
        self.alarm = alarm
        self.time = time
    }
}

extension RuleStateStore {
    /// Default for stores that keep no event records: saves the alarm and returns `nil` (the event is not
    /// recorded, so a crash before its handlers ran loses it).
    public func saveAlarm(_ scope: AccessScope, _ alarm: Alarm, unhandledEvent: UnhandledAlarmEvent) async throws
        -> Int64?
    {
        try await saveAlarm(scope, alarm)
        return nil
    }

    /// Default for stores that keep no event records: none.
    public func unhandledAlarmEvents(_ scope: AccessScope) async throws -> [UnhandledAlarmEvent] { [] }

    /// Default for stores that keep no event records: nothing to do.
    public func markAlarmEventHandled(_ scope: AccessScope, id: Int64) async throws {}
}
