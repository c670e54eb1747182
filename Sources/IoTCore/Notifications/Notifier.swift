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
    /// Whether ``body`` is plain text or HTML (email sends it as `text/html`; other channels as text).
    public var format: NotificationFormat
    /// Files sent with the message: email attaches them; the other channels send the body only.
    public var attachments: [NotificationAttachment]

    /// Creates a notification.
    public init(
        id: String, channel: String, recipient: String, subject: String? = nil, body: String, tenant: TenantID? = nil,
        messageIDs: [String]? = nil, format: NotificationFormat = .text, attachments: [NotificationAttachment] = []
    ) {
        self.id = id
        self.channel = channel
        self.recipient = recipient
        self.subject = subject
        self.body = body
        self.tenant = tenant
        self.messageIDs = messageIDs ?? [id]
        self.format = format
        self.attachments = attachments
    }

    /// Decodes a notification; `format` and `attachments`, absent in older JSON, default to text and none.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        channel = try c.decode(String.self, forKey: .channel)
        recipient = try c.decode(String.self, forKey: .recipient)
        subject = try c.decodeIfPresent(String.self, forKey: .subject)
        body = try c.decode(String.self, forKey: .body)
        tenant = try c.decodeIfPresent(TenantID.self, forKey: .tenant)
        messageIDs = try c.decodeIfPresent([String].self, forKey: .messageIDs) ?? [id]
        format = try c.decodeIfPresent(NotificationFormat.self, forKey: .format) ?? .text
        attachments = try c.decodeIfPresent([NotificationAttachment].self, forKey: .attachments) ?? []
    }

    /// Whether this is a digest of several messages.
    public var isDigest: Bool { messageIDs.count > 1 }
}

/// The format of a notification's body.
public enum NotificationFormat: String, Sendable, Hashable, Codable {
    /// Plain text.
    case text
    /// An HTML document (a report): email sends it as `text/html`.
    case html
}

/// A file sent with a notification: an email attachment (a report's CSV files).
public struct NotificationAttachment: Sendable, Hashable, Codable {
    /// The file name the recipient sees (`alarms.csv`).
    public var name: String
    /// Its media type (`text/csv; charset=utf-8`).
    public var contentType: String
    /// Its bytes (base64 in JSON).
    public var data: [UInt8]

    /// Creates an attachment.
    public init(name: String, contentType: String, data: [UInt8]) {
        self.name = name
        self.contentType = contentType
        self.data = data
    }

    private enum CodingKeys: String, CodingKey { case name, contentType, data }

    /// Decodes `data` from base64.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        contentType = try c.decode(String.self, forKey: .contentType)
        let text = try c.decode(String.self, forKey: .data)
        guard let bytes = Base64.decode(text) else {
            throw DecodingError.dataCorruptedError(forKey: .data, in: c, debugDescription: "data is not base64")
        }
        data = bytes
    }

    /// Encodes `data` as base64.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(contentType, forKey: .contentType)
        try c.encode(Base64.encode(data), forKey: .data)
    }
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
