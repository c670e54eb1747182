public import IoTCore

/// A change in an alarm's lifecycle, for notifications.
///
/// Only raise, clear and acknowledge produce events: a sample that matches nothing, or repeats an
/// active alarm's condition, produces none.
public struct AlarmEvent: Sendable, Hashable {
    /// What happened.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// A new alarm, or a cleared (unacknowledged) one that became active again.
        case raised
        /// The condition cleared, or someone cleared the alarm.
        case cleared
        /// Someone acknowledged the alarm.
        case acknowledged
    }

    /// What happened.
    public var kind: Kind
    /// The tenant.
    public var tenant: TenantID
    /// The alarm after the change.
    public var alarm: Alarm
    /// When it happened (the engine clock, UTC ms).
    public var time: Int64

    /// Creates an event.
    public init(kind: Kind, tenant: TenantID, alarm: Alarm, time: Int64) {
        self.kind = kind
        self.tenant = tenant
        self.alarm = alarm
        self.time = time
    }
}

/// Receives alarm events after they are stored: the notification dispatcher, a live feed, a test.
///
/// ## Implementing a handler
/// - ``handle(_:)`` is awaited in event order by the engine's persistence step: return quickly (hand
///   the event to your own bounded queue or outbox) and never throw.
public protocol AlarmEventHandler: Sendable {
    /// Called once per event, in order.
    func handle(_ event: AlarmEvent) async
}
