/// A message to a person through one channel.
public struct Notification: Sendable, Hashable, Codable {
    /// Unique id (the outbox message id).
    public var id: String
    /// The channel name.
    public var channel: String
    /// The recipient in the channel's terms (an address, a webhook URL name, a phone number).
    public var recipient: String
    /// The subject, for channels that have one.
    public var subject: String?
    /// The rendered body.
    public var body: String
    /// The tenant it belongs to (the inbox stores per tenant); `nil` when sent outside a tenant.
    public var tenant: TenantID?
    /// The outbox messages this one stands for: `[id]` for a single message, more for a storm digest
    /// (their bodies are joined in ``body``, oldest first).
    public var messageIDs: [String]

    /// Creates a notification.
    public init(
        id: String, channel: String, recipient: String, subject: String? = nil, body: String, tenant: TenantID? = nil,
        messageIDs: [String]? = nil
    ) {
        self.id = id
        self.channel = channel
        self.recipient = recipient
        self.subject = subject
        self.body = body
        self.tenant = tenant
        self.messageIDs = messageIDs ?? [id]
    }

    /// Whether this is a digest of several messages.
    public var isDigest: Bool { messageIDs.count > 1 }
}

/// A notification channel: inbox, email, webhook, Feishu, DingTalk, WeCom, Slack, SMS, voice.
///
/// ## Implementing a notifier
/// - ``send(_:)`` returns when the channel's peer accepted the message. Throw ``IoTError`` with
///   ``IoTError/Code/unavailable`` or ``IoTError/Code/timeout`` for failures worth retrying, and
///   ``IoTError/Code/unauthorized`` or ``IoTError/Code/invalidArgument`` for failures that retrying
///   cannot fix (the dispatcher dead-letters those at once).
/// - Never retry inside ``send(_:)``: retries, backoff and rate limits belong to the dispatcher.
/// - Use `IoTTesting.RecordingNotifier` in tests of what is sent.
public protocol Notifier: Sendable {
    /// The channel name this notifier serves (`email`).
    var channel: String { get }
    /// Delivers one notification.
    func send(_ notification: Notification) async throws
}
