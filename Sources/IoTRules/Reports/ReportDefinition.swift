public import IoTCore

/// A scheduled report of one tenant: on each fire of ``cron`` it covers the ``periodMillis`` before the fire
/// (chosen devices and signals, their aggregates, the alarms of the period), as an HTML document with CSV
/// attachments, kept for download and sent to its ``recipients`` through the notification outbox.
///
/// ```json
/// {"id": "daily", "title": "Boiler room, daily", "cron": "0 6 * * *", "timeZone": "Europe/Berlin",
///  "periodMillis": 86400000, "devices": ["t-1", "t-2"], "signals": ["temperature"],
///  "aggregates": ["count", "mean", "min", "max"], "bucketMillis": 3600000,
///  "recipients": [{"channel": "email", "to": "ops@example.com"}]}
/// ```
public struct ReportDefinition: Sendable, Hashable, Codable {
    /// Unique within the tenant.
    public var id: String
    /// The report's heading and the email's subject.
    public var title: String
    /// When it runs.
    public var cron: CronExpression
    /// The time zone of ``cron`` (default UTC).
    public var timeZone: CronTimeZone
    /// The span it covers, ending at the fire time.
    public var periodMillis: Int64
    /// The devices it covers.
    public var devices: [String]
    /// The signals it covers; empty: every signal of each device (its product's and its own).
    public var signals: [String]
    /// The aggregates of each signal over the period (default count, mean, min and max).
    public var aggregates: [ReportAggregate]
    /// When set, `series.csv` holds the aggregates per bucket of this width as well.
    public var bucketMillis: Int64?
    /// Whether the alarms started in the period are listed (`alarms.csv`). Default `true`.
    public var alarms: Bool
    /// Who receives each run (an outbox message each); none: it is only kept for download.
    public var recipients: [ReportRecipient]
    /// Runs kept for download (the oldest are removed beyond). Default 30.
    public var keepRuns: Int

    /// Creates a definition.
    public init(
        id: String, title: String, cron: CronExpression, timeZone: CronTimeZone = .utc, periodMillis: Int64,
        devices: [String], signals: [String] = [], aggregates: [ReportAggregate] = ReportAggregate.defaults,
        bucketMillis: Int64? = nil, alarms: Bool = true, recipients: [ReportRecipient] = [], keepRuns: Int = 30
    ) {
        self.id = id
        self.title = title
        self.cron = cron
        self.timeZone = timeZone
        self.periodMillis = periodMillis
        self.devices = devices
        self.signals = signals
        self.aggregates = aggregates
        self.bucketMillis = bucketMillis
        self.alarms = alarms
        self.recipients = recipients
        self.keepRuns = keepRuns
    }

    private enum CodingKeys: String, CodingKey {
        case id, title, cron, timeZone, periodMillis, devices, signals, aggregates, bucketMillis, alarms, recipients
        case keepRuns
    }

    /// Decodes a definition; the optional keys take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        title = try c.decode(String.self, forKey: .title)
        cron = try c.decode(CronExpression.self, forKey: .cron)
        timeZone = try c.decodeIfPresent(CronTimeZone.self, forKey: .timeZone) ?? .utc
        periodMillis = try c.decode(Int64.self, forKey: .periodMillis)
        devices = try c.decode([String].self, forKey: .devices)
        signals = try c.decodeIfPresent([String].self, forKey: .signals) ?? []
        aggregates = try c.decodeIfPresent([ReportAggregate].self, forKey: .aggregates) ?? ReportAggregate.defaults
        bucketMillis = try c.decodeIfPresent(Int64.self, forKey: .bucketMillis)
        alarms = try c.decodeIfPresent(Bool.self, forKey: .alarms) ?? true
        recipients = try c.decodeIfPresent([ReportRecipient].self, forKey: .recipients) ?? []
        keepRuns = try c.decodeIfPresent(Int.self, forKey: .keepRuns) ?? 30
    }

    /// Checks the values; the error names the key.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument``.
    public func validate() throws(IoTError) {
        func invalid(_ message: String) -> IoTError { IoTError(.invalidArgument, message) }
        guard !title.isEmpty, title.count <= 200 else { throw invalid("title: give 1 to 200 characters") }
        guard periodMillis > 0, periodMillis <= 366 * 86_400_000 else {
            throw invalid("periodMillis: \(periodMillis) is out of range; use 1 ms to 366 days")
        }
        guard !devices.isEmpty, devices.count <= 1_000 else {
            throw invalid("devices: list 1 to 1000 devices (there are \(devices.count))")
        }
        guard signals.count <= 100 else { throw invalid("signals: at most 100 (there are \(signals.count))") }
        guard !aggregates.isEmpty else { throw invalid("aggregates: name at least one of \(ReportAggregate.names)") }
        if let bucket = bucketMillis {
            guard bucket >= 1_000, periodMillis / bucket <= 10_000 else {
                throw invalid(
                    "bucketMillis: \(bucket) gives more than 10000 buckets per series, or is under 1000; widen it")
            }
        }
        guard (1...1_000).contains(keepRuns) else {
            throw invalid("keepRuns: \(keepRuns) is out of range; use 1 to 1000")
        }
        for (i, r) in recipients.enumerated() where r.channel.isEmpty || r.to.isEmpty {
            throw invalid("recipients[\(i)]: give a channel and an address (to)")
        }
    }
}

/// Where a report is sent: a notification channel (`email`) and an address in its terms.
public struct ReportRecipient: Sendable, Hashable, Codable {
    /// The channel's name (`notifications.channels`).
    public var channel: String
    /// The recipient's address in the channel's terms.
    public var to: String

    /// Creates a recipient.
    public init(channel: String, to: String) {
        self.channel = channel
        self.to = to
    }
}

/// An aggregate a report shows per signal.
public enum ReportAggregate: String, Sendable, Hashable, Codable, CaseIterable {
    /// Points in the period.
    case count
    /// Their sum.
    case sum
    /// Their mean.
    case mean
    /// The smallest.
    case min
    /// The largest.
    case max
    /// The earliest point's value.
    case first
    /// The latest point's value.
    case last

    /// count, mean, min and max.
    public static let defaults: [ReportAggregate] = [.count, .mean, .min, .max]

    static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The aggregate of a bucket.
    public func value(of bucket: AggregateBucket) -> SignalValue? {
        switch self {
        case .count: .number(Double(bucket.count))
        case .sum: bucket.sum.map(SignalValue.number)
        case .mean: bucket.mean.map(SignalValue.number)
        case .min: bucket.min.map(SignalValue.number)
        case .max: bucket.max.map(SignalValue.number)
        case .first: bucket.first
        case .last: bucket.last
        }
    }
}

/// One run of a report: the HTML document and its CSV files.
public struct Report: Sendable, Hashable, Codable {
    /// The definition it ran.
    public var definitionID: String
    /// The definition's title.
    public var title: String
    /// The period covered: `[from, to)` (UTC ms); `to` is the fire time and names the run.
    public var from: Int64
    /// The period's end.
    public var to: Int64
    /// When it was made (UTC ms).
    public var generatedAt: Int64
    /// The document.
    public var html: String
    /// `summary.csv`, then `series.csv` and `alarms.csv` when the definition asks for them.
    public var attachments: [NotificationAttachment]

    /// Creates a run.
    public init(
        definitionID: String, title: String, from: Int64, to: Int64, generatedAt: Int64, html: String,
        attachments: [NotificationAttachment]
    ) {
        self.definitionID = definitionID
        self.title = title
        self.from = from
        self.to = to
        self.generatedAt = generatedAt
        self.html = html
        self.attachments = attachments
    }
}
