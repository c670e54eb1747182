public import IoTCore

/// A topic pattern that names the device: `devices/{uid}/telemetry`.
///
/// `{uid}` stands for one topic level and is the device's uid; `+` matches any one level and `#` the rest
/// of the topic. ``filter`` is the MQTT subscription filter that covers the template
/// (`devices/+/telemetry`).
public struct TopicTemplate: Sendable, Hashable, CustomStringConvertible {
    enum Level: Sendable, Hashable {
        case literal(Substring)
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
                levels.append(.literal(part))
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
            case .literal(let s): String(s)
            case .uid, .any: "+"
            case .rest: "#"
            }
        }.joined(separator: "/")
    }

    /// The device uid named by `topic`, or `nil` when the topic does not fit the template.
    public func deviceUID(in topic: String) -> String? {
        var uid: Substring?
        var parts = topic.split(separator: "/", omittingEmptySubsequences: false)[...]
        for level in levels {
            if case .rest = level { return uid.map(String.init) }
            guard let part = parts.popFirst() else { return nil }
            switch level {
            case .literal(let s): if part != s { return nil }
            case .uid:
                if part.isEmpty { return nil }
                uid = part
            case .any, .rest: break
            }
        }
        return parts.isEmpty ? uid.map(String.init) : nil
    }
}
