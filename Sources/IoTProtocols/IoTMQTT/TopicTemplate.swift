public import IoTCore

/// A topic pattern that names the device: `devices/{uid}/telemetry`.
///
/// `{uid}` stands for one topic level and is the device's uid; `+` matches any one level and `#` the rest
/// of the topic. ``filter`` is the MQTT subscription filter that covers the template
/// (`devices/+/telemetry`).
public struct TopicTemplate: Sendable, Hashable, CustomStringConvertible {
    enum Level: Sendable, Hashable {
        /// A level that must be exactly these UTF-8 bytes.
        case literal([UInt8])
        case uid
        case any
        case rest
    }

    let levels: [Level]
    /// The template as written.
    public let description: String

    /// Parses a template.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` when `{uid}` is missing or appears twice, or `#`
    ///   is not the last level.
    public init(_ template: String) throws(IoTError) {
        var levels: [Level] = []
        let parts = template.split(separator: "/", omittingEmptySubsequences: false)
        for (i, part) in parts.enumerated() {
            switch part {
            case "{uid}": levels.append(.uid)
            case "+": levels.append(.any)
            case "#":
                guard i == parts.count - 1 else {
                    throw IoTError(.invalidArgument, "topic template '\(template)': '#' must be the last level")
                }
                levels.append(.rest)
            default:
                guard !part.contains("{"), !part.contains("+"), !part.contains("#") else {
                    throw IoTError(
                        .invalidArgument,
                        "topic template '\(template)': level '\(part)' mixes text with a wildcard; use whole levels like devices/{uid}/telemetry"
                    )
                }
                levels.append(.literal(Array(part.utf8)))
            }
        }
        guard levels.filter({ $0 == .uid }).count == 1 else {
            throw IoTError(
                .invalidArgument, "topic template '\(template)' must name the device with exactly one {uid} level")
        }
        self.levels = levels
        self.description = template
    }

    /// The subscription filter that covers the template.
    public var filter: String {
        levels.map { level -> String in
            switch level {
            case .literal(let s): String(decoding: s, as: UTF8.self)
            case .uid, .any: "+"
            case .rest: "#"
            }
        }.joined(separator: "/")
    }

    /// The device uid named by `topic`, or `nil` when the topic does not fit the template.
    ///
    /// Runs for every message an MQTT transport receives: it compares UTF-8 bytes in place and allocates only
    /// the uid it returns.
    public func deviceUID(in topic: String) -> String? {
        var topic = topic
        return topic.withUTF8 { deviceUID(inUTF8: $0) }
    }

    private func deviceUID(inUTF8 bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let slash = UInt8(ascii: "/")
        let n = bytes.count
        var uid: Range<Int>?
        // `start` is where the next level begins; past `n` once the topic has no level left.
        var start = 0
        for level in levels {
            if case .rest = level { break }
            guard start <= n else { return nil }
            var end = start
            while end < n && bytes[end] != slash { end += 1 }
            switch level {
            case .literal(let expected):
                guard end - start == expected.count else { return nil }
                for k in 0..<expected.count where bytes[start + k] != expected[k] { return nil }
            case .uid:
                if end == start { return nil }
                uid = start..<end
            case .any, .rest: break
            }
            start = end + 1
        }
        // Without `#` every level of the topic is matched.
        if case .rest = levels.last {} else if start <= n { return nil }
        return uid.map { String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self) }
    }
}
