public import Logging

/// swift-log's `StreamLogHandler` on standard error, the same lines, with its metadata formatted when a
/// message is written instead of each time a value is set.
///
/// `StreamLogHandler` formats all of its metadata on every set. Hummingbird sets a request id on each request's
/// logger, so with text logs every request paid for a formatting that is almost never written: about 1 % of
/// `iotd`'s CPU at 1,000 device requests per second. `iotd` uses this handler with `logging: {format: text}`
/// (the default); an application bootstraps it itself:
///
/// ```swift
/// LoggingSystem.bootstrap { label in TextLogHandler(label: label) }
/// ```
public struct TextLogHandler: LogHandler {
    private var stream: StreamLogHandler
    /// Metadata added to every message of this handler.
    public var metadata: Logger.Metadata = [:]

    /// A handler for `label` that writes to standard error.
    public init(label: String) {
        stream = .standardError(label: label)
    }

    /// A handler for `label` that writes to `stream`: for tests, or another destination.
    public init(label: String, stream: any TextOutputStream & Sendable) {
        self.stream = StreamLogHandler(label: label, stream: stream, metadataProvider: nil)
    }

    /// Messages below this level are not written. Default `info`.
    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    /// One metadata value.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line, as `StreamLogHandler` does, with this handler's metadata and the message's merged.
    public func log(event: LogEvent) {
        guard !metadata.isEmpty else { return stream.log(event: event) }
        var event = event
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        event.metadata = merged
        stream.log(event: event)
    }
}
