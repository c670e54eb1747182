import Foundation
import IoTCore
public import Logging

/// A swift-log handler that writes one JSON object per line to standard error, for log collectors
/// (journald, Loki, Elasticsearch, Fluent Bit) that read structured lines.
///
/// Each line has `ts` (RFC 3339, UTC, milliseconds), `level`, `label` (the logger's), `message`, the merged
/// metadata under `metadata` (nested values stay arrays and objects), and `source`, `file` and `line`:
///
/// ```json
/// {"ts":"2026-12-05T22:30:00.123Z","level":"info","label":"iotd","message":"iotd serving","metadata":{"device_http":"8080"},"source":"iotd","file":"iotd/Serve.swift","line":52}
/// ```
///
/// `iotd` uses it with `logging: {format: json}`; an application bootstraps it itself:
///
/// ```swift
/// LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
/// ```
public struct JSONLogHandler: LogHandler {
    /// The logger's label.
    public let label: String
    /// Messages below this level are not written. Default `info`.
    public var logLevel: Logger.Level = .info
    /// Metadata added to every message of this handler.
    public var metadata: Logger.Metadata = [:]
    private let write: @Sendable (String) -> Void

    /// A handler for `label` that writes to standard error.
    public init(label: String) {
        self.init(label: label, write: JSONLogHandler.standardError)
    }

    /// A handler for `label` that hands each line (with its newline) to `write`: for tests, or another
    /// destination.
    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.write = write
    }

    /// One metadata value.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line.
    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = "{\"ts\":\(jsonString(Self.timestamp()))"
        line += ",\"level\":\(jsonString(event.level.rawValue)),\"label\":\(jsonString(label))"
        line += ",\"message\":\(jsonString(event.message.description))"
        if !merged.isEmpty { line += ",\"metadata\":" + Self.json(.dictionary(merged)) }
        line += ",\"source\":\(jsonString(event.source)),\"file\":\(jsonString(event.file)),\"line\":\(event.line)}\n"
        write(line)
    }

    static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): jsonString(s)
        case .stringConvertible(let c): jsonString(c.description)
        case .array(let a): "[" + a.map(json).joined(separator: ",") + "]"
        case .dictionary(let d):
            "{" + d.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + json($0.value) }.joined(separator: ",")
                + "}"
        }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var t = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &t)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour,
            t.tm_min, t.tm_sec, now.tv_nsec / 1_000_000)
    }

    /// Whole lines with one `write(2)` each, so that lines of several threads never interleave.
    private static let standardError: @Sendable (String) -> Void = { line in
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}
