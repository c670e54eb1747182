/// A notification waiting to be delivered, or delivered, or given up on.
public struct OutboxMessage: Sendable, Hashable, Codable {
    /// The delivery state.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        /// Waiting for its next attempt.
        case pending
        /// Claimed by a dispatcher that is sending it now.
        case sending
        /// Delivered.
        case delivered
        /// Given up after too many attempts or a permanent error; see ``OutboxMessage/lastError``.
        case deadLetter = "dead_letter"
    }

    /// Unique id.
    public var id: String
    /// The channel name (`email`, `webhook`, `dingtalk`, …).
    public var channel: String
    /// The recipient address in the channel's terms.
    public var recipient: String
    /// The subject, for channels that have one.
    public var subject: String?
    /// The rendered body.
    public var body: String
    /// Messages with the same key are delivered in order (an alarm id).
    public var orderingKey: String?
    /// When it was enqueued (UTC ms).
    public var createdAt: Int64
    /// Not before this time (UTC ms).
    public var nextAttemptAt: Int64
    /// Attempts made so far.
    public var attempts: Int
    /// The state.
    public var status: Status
    /// The reason of the last failure.
    public var lastError: String?
    /// Whether ``body`` is plain text or HTML.
    public var format: NotificationFormat
    /// Files sent with the message (email attaches them). A message with attachments is never merged into a
    /// storm digest.
    public var attachments: [NotificationAttachment]

    /// Creates a pending message.
    public init(
        id: String, channel: String, recipient: String, subject: String? = nil, body: String,
        orderingKey: String? = nil, createdAt: Int64, nextAttemptAt: Int64? = nil, attempts: Int = 0,
        status: Status = .pending, lastError: String? = nil, format: NotificationFormat = .text,
        attachments: [NotificationAttachment] = []
    ) {
        self.format = format
        self.attachments = attachments
        self.id = id
        self.channel = channel
        self.recipient = recipient
        self.subject = subject
        self.body = body
        self.orderingKey = orderingKey
        self.createdAt = createdAt
        self.nextAttemptAt = nextAttemptAt ?? createdAt
        self.attempts = attempts
        self.status = status
        self.lastError = lastError
    }

    /// Decodes a message; `format` and `attachments`, absent in older JSON, default to text and none.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        channel = try c.decode(String.self, forKey: .channel)
        recipient = try c.decode(String.self, forKey: .recipient)
        subject = try c.decodeIfPresent(String.self, forKey: .subject)
        body = try c.decode(String.self, forKey: .body)
        orderingKey = try c.decodeIfPresent(String.self, forKey: .orderingKey)
        createdAt = try c.decode(Int64.self, forKey: .createdAt)
        nextAttemptAt = try c.decode(Int64.self, forKey: .nextAttemptAt)
        attempts = try c.decode(Int.self, forKey: .attempts)
        status = try c.decode(Status.self, forKey: .status)
        lastError = try c.decodeIfPresent(String.self, forKey: .lastError)
        format = try c.decodeIfPresent(NotificationFormat.self, forKey: .format) ?? .text
        attachments = try c.decodeIfPresent([NotificationAttachment].self, forKey: .attachments) ?? []
    }
}

/// A durable queue of notifications: a crash never loses one that was enqueued.
///
/// ## Implementing an outbox
/// - ``enqueue(_:_:)`` is durable when it returns. Enqueueing an existing id throws
///   ``IoTError/Code/conflict``.
/// - ``claimDue(_:now:limit:)`` moves up to `limit` pending messages whose ``OutboxMessage/nextAttemptAt``
///   is not after `now` to ``OutboxMessage/Status/sending`` and returns them oldest first; a message
///   whose ``OutboxMessage/orderingKey`` has an earlier message still pending or sending is not claimed,
///   so one alarm's notifications arrive in order.
/// - ``releaseClaims(_:)`` (on start) turns every `sending` message back to `pending`: a crash mid-send
///   means at-least-once delivery.
/// - Pass `IoTTesting.OutboxConformance` to check an implementation.
public protocol Outbox: Sendable {
    /// Adds a pending message.
    func enqueue(_ scope: AccessScope, _ message: OutboxMessage) async throws
    /// Claims due messages for sending.
    func claimDue(_ scope: AccessScope, now: Int64, limit: Int) async throws -> [OutboxMessage]
    /// Marks a claimed message delivered.
    func markDelivered(_ scope: AccessScope, id: String, at time: Int64) async throws
    /// Records a failed attempt: back to pending with `nextAttemptAt`, attempts + 1.
    func markFailed(_ scope: AccessScope, id: String, error: String, nextAttemptAt: Int64) async throws
    /// Gives up on a message: dead letter, attempts + 1, with the reason.
    func markDeadLetter(_ scope: AccessScope, id: String, error: String) async throws
    /// Turns every `sending` message back to `pending`; returns how many.
    @discardableResult
    func releaseClaims(_ scope: AccessScope) async throws -> Int
    /// Puts a dead letter back in the queue: pending, due at `time`, attempts back to 0 (the last error
    /// is kept). Throws ``IoTError/Code/notFound`` for an unknown id and ``IoTError/Code/conflict`` for a
    /// message that is not a dead letter.
    func retry(_ scope: AccessScope, id: String, at time: Int64) async throws
    /// One message by id, in any state; `nil` when unknown.
    func message(_ scope: AccessScope, id: String) async throws -> OutboxMessage?
    /// Messages in a state, oldest first, at most `limit`.
    func messages(_ scope: AccessScope, status: OutboxMessage.Status, limit: Int) async throws -> [OutboxMessage]
}

extension OutboxMessage {
    /// The error of an outbox operation on message `id` of `tenant` that has no such message.
    package static func notFound(_ id: String, tenant: TenantID) -> IoTError {
        IoTError(.notFound, "outbox message '\(id)' does not exist in tenant '\(tenant)'")
    }

    /// Why ``Outbox/retry(_:id:at:)`` refuses message `id` with `status` (`nil`: there is no such message), or
    /// `nil` for a dead letter, which it retries.
    package static func retryRefusal(_ status: String?, id: String, tenant: TenantID) -> IoTError? {
        guard let status else { return notFound(id, tenant: tenant) }
        guard status == Status.deadLetter.rawValue else {
            return IoTError(
                .conflict, "outbox message '\(id)' is \(status), not a dead letter; only dead letters can be retried")
        }
        return nil
    }
}
