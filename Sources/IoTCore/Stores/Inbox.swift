/// A site message in a recipient's inbox.
public struct InboxMessage: Sendable, Hashable, Codable {
    /// Unique id (the notification id).
    public var id: String
    /// The recipient (a user name).
    public var recipient: String
    /// The subject, when there is one.
    public var subject: String?
    /// The text.
    public var body: String
    /// When it arrived (UTC ms).
    public var createdAt: Int64
    /// When the recipient read it; `nil` while unread.
    public var readAt: Int64?

    /// Whether it was read.
    public var isRead: Bool { readAt != nil }

    /// Creates a message.
    public init(
        id: String, recipient: String, subject: String? = nil, body: String, createdAt: Int64, readAt: Int64? = nil
    ) {
        self.id = id
        self.recipient = recipient
        self.subject = subject
        self.body = body
        self.createdAt = createdAt
        self.readAt = readAt
    }
}

/// Site messages per recipient, read or unread: what the inbox channel writes and the management API
/// lists.
///
/// ## Implementing an inbox
/// - ``add(_:_:)`` of an existing id does nothing (a notification re-sent after a crash shows once).
/// - ``messages(_:recipient:unreadOnly:limit:)`` answers newest first.
public protocol Inbox: Sendable {
    /// Stores a message (idempotent by id).
    func add(_ scope: AccessScope, _ message: InboxMessage) async throws
    /// A recipient's messages, newest first.
    func messages(_ scope: AccessScope, recipient: String, unreadOnly: Bool, limit: Int) async throws -> [InboxMessage]
    /// Marks a message read at `time`; `false` when the recipient has no message `id`.
    func markRead(_ scope: AccessScope, recipient: String, id: String, at time: Int64) async throws -> Bool
    /// How many unread messages a recipient has.
    func unreadCount(_ scope: AccessScope, recipient: String) async throws -> Int
}
