/// What an MQTT client is doing.
public enum MQTTClientState: String, Sendable, Codable, Hashable {
    /// Created, not started.
    case idle
    /// A connection attempt is under way.
    case connecting
    /// Connected; subscriptions were sent.
    case connected
    /// The connection was lost or refused; the next attempt waits for the backoff delay.
    case reconnecting
    /// The broker refused the credentials or the client id; the client does not retry.
    case failed
    /// Stopped by the client's `stop()`.
    case stopped
}

/// A subscription of an MQTT client as the broker answered it.
public struct MQTTSubscriptionStatus: Sendable, Codable, Hashable {
    /// The topic filter (with its `$share/<group>/` prefix for a shared subscription).
    public var filter: String
    /// The QoS asked for.
    public var qos: Int
    /// The QoS the broker granted on the current connection; `nil` before its SUBACK, 128 when refused.
    public var grantedQoS: Int?

    /// Creates a subscription status.
    public init(filter: String, qos: Int, grantedQoS: Int?) {
        self.filter = filter
        self.qos = qos
        self.grantedQoS = grantedQoS
    }
}

/// An MQTT client's counters and state, for monitoring.
public struct MQTTClientStatus: Sendable, Codable, Hashable {
    /// The state.
    public var state: MQTTClientState
    /// The last connection or protocol error, in words.
    public var lastError: String?
    /// Messages received from the broker.
    public var messagesIn: Int
    /// Payload bytes received.
    public var bytesIn: Int
    /// Messages published.
    public var messagesOut: Int
    /// Connections lost or refused since the start (each one is followed by a reconnect attempt unless
    /// the client failed or stopped).
    public var reconnects: Int
    /// The subscriptions.
    public var subscriptions: [MQTTSubscriptionStatus]

    /// Creates a status.
    public init(
        state: MQTTClientState, lastError: String?, messagesIn: Int, bytesIn: Int, messagesOut: Int, reconnects: Int,
        subscriptions: [MQTTSubscriptionStatus]
    ) {
        self.state = state
        self.lastError = lastError
        self.messagesIn = messagesIn
        self.bytesIn = bytesIn
        self.messagesOut = messagesOut
        self.reconnects = reconnects
        self.subscriptions = subscriptions
    }
}

/// Outcomes of the messages an MQTT ingest client received.
public struct MQTTIngestCounters: Sendable, Codable, Hashable {
    /// Journaled (including messages that carried no values).
    public var stored: Int
    /// Rejected and acknowledged (counted by the ingestor with the reason).
    public var rejected: Int
    /// Left unacknowledged because the journal failed or the ingestor stopped; the broker sends them
    /// again.
    public var notAcknowledged: Int
    /// Read passes that handed messages on: each is one journal write followed by one burst of
    /// acknowledgements, so messages per pass is how well a busy subscription is batched.
    public var readPasses: Int

    /// Creates counters.
    public init(stored: Int, rejected: Int, notAcknowledged: Int, readPasses: Int = 0) {
        self.stored = stored
        self.rejected = rejected
        self.notAcknowledged = notAcknowledged
        self.readPasses = readPasses
    }

    private enum CodingKeys: String, CodingKey { case stored, rejected, notAcknowledged, readPasses }

    /// Decodes the counters; `readPasses` is 0 when absent (a report of an earlier release).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            stored: try c.decode(Int.self, forKey: .stored), rejected: try c.decode(Int.self, forKey: .rejected),
            notAcknowledged: try c.decode(Int.self, forKey: .notAcknowledged),
            readPasses: try c.decodeIfPresent(Int.self, forKey: .readPasses) ?? 0)
    }
}
