public import IoTCore

/// The inbox channel: stores each notification as a site message of its recipient in the tenant's
/// ``IoTCore/Inbox`` (read/unread, listed by the management API).
public struct InboxNotifier: Notifier {
    public let channel: String
    let inbox: any Inbox
    let clock: any IoTClock

    /// Creates the notifier of `channel` writing to `inbox`.
    public init(channel: String = "inbox", inbox: any Inbox, clock: any IoTClock = SystemClock()) {
        self.channel = channel
        self.inbox = inbox
        self.clock = clock
    }

    public func send(_ n: IoTCore.Notification) async throws {
        guard let tenant = n.tenant else {
            throw IoTError(.invalidArgument, "\(channel): an inbox message needs a tenant")
        }
        guard !n.recipient.isEmpty else {
            throw IoTError(.invalidArgument, "\(channel): an inbox message needs a recipient (a user name)")
        }
        try await inbox.add(
            .tenant(tenant),
            InboxMessage(id: n.id, recipient: n.recipient, subject: n.subject, body: n.body, createdAt: clock.now()))
    }
}
