extension NotificationDispatcher {
    /// Rate limit and storm digest of one channel, applied per (channel, recipient).
    public struct ChannelPolicy: Sendable, Hashable {
        /// Messages a minute to one recipient (a robot webhook, an address); `nil` for no limit.
        /// DingTalk and WeCom robots accept about 20. Messages over the limit wait in order. Default `nil`;
        /// range 1 to 1,000,000.
        public var messagesPerMinute: Int?
        /// Messages that may go at once before the rate applies; default (`nil`) ``messagesPerMinute``;
        /// range 1 to 1,000,000.
        public var burst: Int?
        /// After this many messages to one recipient within ``digestWindow``, the next ones wait
        /// for the window to end and go as one digest. `0` turns digests off. Default 3; range 0 to 1,000,000.
        public var digestThreshold: Int
        /// The digest window. Default 10 000 ms: 500 alarms raised within a second reach a recipient
        /// as 3 messages and 1 digest. Range 1 ms to 86,400,000 ms (a day).
        public var digestWindow: Duration
        /// Overrides ``Configuration/maxAttempts`` for this channel; range 1 to 1,000.
        public var maxAttempts: Int?

        /// The token bucket's size.
        var capacity: Double { Double(max(1, burst ?? messagesPerMinute ?? 1)) }

        /// Creates a policy; every argument has the default documented on its property.
        public init(
            messagesPerMinute: Int? = nil, burst: Int? = nil, digestThreshold: Int = 3,
            digestWindow: Duration = .seconds(10),
            maxAttempts: Int? = nil
        ) {
            self.messagesPerMinute = messagesPerMinute
            self.burst = burst
            self.digestThreshold = digestThreshold
            self.digestWindow = digestWindow
            self.maxAttempts = maxAttempts
        }

        /// Checks every field against its documented range.
        ///
        /// - Parameter prefix: what the fields' names are prefixed with in the error (`"channels[ops]."`).
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the field and its range.
        public func validate(prefix: String = "") throws(IoTError) {
            if let v = messagesPerMinute {
                try IoTLimits.checkCount(v, prefix + "messagesPerMinute", in: 1...1_000_000)
            }
            if let v = burst { try IoTLimits.checkCount(v, prefix + "burst", in: 1...1_000_000) }
            try IoTLimits.checkCount(digestThreshold, prefix + "digestThreshold", in: 0...1_000_000)
            try IoTLimits.checkMillis(digestWindow.inMilliseconds, prefix + "digestWindowMillis", in: 1...86_400_000)
            if let v = maxAttempts { try IoTLimits.checkCount(v, prefix + "maxAttempts", in: 1...1_000) }
        }
    }

    /// Dispatcher settings; every field has a default.
    ///
    /// ```swift
    /// var c = NotificationDispatcher.Configuration()
    /// c.channels["ops-dingtalk"] = .init(messagesPerMinute: 20)
    /// ```
    public struct Configuration: Sendable {
        /// Attempts before a message is dead-lettered. Default 8; range 1 to 1,000.
        public var maxAttempts: Int = 8
        /// The wait after the first failure; it doubles with every further failure. Default 1 000 ms;
        /// range 1 ms to 86,400,000 ms (a day).
        public var initialBackoff: Duration = .seconds(1)
        /// The longest wait between two attempts. Default 300 000 ms (5 minutes); range
        /// ``initialBackoff`` to 604,800,000 ms (a week).
        public var maxBackoff: Duration = .seconds(300)
        /// How often the outbox is looked at when nothing wakes the dispatcher. Default 1 000 ms; range 10 ms
        /// to 3,600,000 ms (an hour).
        public var pollInterval: Duration = .seconds(1)
        /// Messages claimed from the outbox at once. Default 256; range 1 to 100,000.
        public var batchSize: Int = 256
        /// Claimed messages held in memory (waiting for a rate limit or a digest) at most. Default 10 000;
        /// range 1 to 10,000,000.
        public var maxHeld: Int = 10_000
        /// How often the tenant list is read again. Default 10 000 ms; range 10 ms to 86,400,000 ms (a day).
        public var tenantRefreshInterval: Duration = .seconds(10)
        /// Bodies listed in a digest; the rest are counted. Default 50; range 0 to 10,000.
        public var digestMaxListed: Int = 50
        /// The policy of channels not in ``channels``.
        public var defaultPolicy = ChannelPolicy()
        /// Per-channel policies by channel name.
        public var channels: [String: ChannelPolicy] = [:]

        /// Creates the default configuration.
        public init() {}

        /// Checks every field, the default policy and every channel's policy against their documented ranges.
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the field (`channels[ops].burst`) and its range.
        public func validate() throws(IoTError) {
            try IoTLimits.checkCount(maxAttempts, "maxAttempts", in: 1...1_000)
            try IoTLimits.checkMillis(initialBackoff.inMilliseconds, "initialBackoffMillis", in: 1...86_400_000)
            try IoTLimits.checkMillis(
                maxBackoff.inMilliseconds, "maxBackoffMillis", in: initialBackoff.inMilliseconds...604_800_000)
            try IoTLimits.checkMillis(pollInterval.inMilliseconds, "pollIntervalMillis", in: 10...3_600_000)
            try IoTLimits.checkCount(batchSize, "batchSize", in: 1...100_000)
            try IoTLimits.checkCount(maxHeld, "maxHeld", in: 1...10_000_000)
            try IoTLimits.checkMillis(tenantRefreshInterval.inMilliseconds, "tenantRefreshMillis", in: 10...86_400_000)
            try IoTLimits.checkCount(digestMaxListed, "digestMaxListed", in: 0...10_000)
            try defaultPolicy.validate()
            for (name, policy) in channels.sorted(by: { $0.key < $1.key }) {
                try policy.validate(prefix: "channels[\(name)].")
            }
        }

        /// The policy of `channel`.
        public func policy(_ channel: String) -> ChannelPolicy { channels[channel] ?? defaultPolicy }

        /// The wait before the next attempt of a message that has failed `attempts` times (1, 2, …).
        public func backoff(afterAttempts attempts: Int) -> Int64 {
            let shift = min(max(attempts - 1, 0), 40)
            let raw = initialBackoff.inMilliseconds.multipliedReportingOverflow(by: Int64(1) << shift)
            return raw.overflow ? maxBackoff.inMilliseconds : min(raw.partialValue, maxBackoff.inMilliseconds)
        }
    }

    /// Counters of one channel since start.
    public struct ChannelStatistics: Sendable, Hashable, Codable {
        /// Messages the channel's peer accepted (a digest counts every message in it).
        public var sent = 0
        /// Deliveries made (a digest is one).
        public var deliveries = 0
        /// Digests delivered.
        public var digests = 0
        /// Failed attempts.
        public var failed = 0
        /// Failed attempts put back for a retry.
        public var retried = 0
        /// Messages given up (dead letters).
        public var deadLettered = 0
        /// Creates zero counters.
        public init() {}
    }
}
