import IoTCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
    import FoundationInternationalization
#else
    import Foundation
#endif

/// The time zone a cron expression is read in: UTC, a fixed offset, or an IANA zone with its
/// daylight-saving rules (`Europe/Berlin`, `America/New_York`).
///
/// Only the zone's *rules* are used (its offset from UTC at a given instant); the current time always
/// comes from an injected ``IoTCore/IoTClock``.
///
/// ```swift
/// let berlin = CronTimeZone(identifier: "Europe/Berlin")!
/// let fire = try CronExpression("30 2 * * *").next(after: now, in: berlin)
/// ```
public struct CronTimeZone: Sendable, Hashable, Codable, CustomStringConvertible {
    private enum Kind: Hashable, Sendable {
        case fixed(Int64)
        case named(TimeZone)
    }
    private let kind: Kind
    /// The IANA identifier (`Europe/Berlin`), `UTC`, or `UTC+01:30` for a fixed offset.
    public let identifier: String

    /// Coordinated Universal Time.
    public static let utc = CronTimeZone(offsetSeconds: 0)

    /// A zone with a fixed offset from UTC and no daylight saving.
    public init(offsetSeconds: Int) {
        var identifier = "UTC"
        if offsetSeconds != 0 {
            let a = abs(offsetSeconds)
            let h = a / 3600
            let m = (a % 3600) / 60
            identifier = "UTC\(offsetSeconds < 0 ? "-" : "+")\(h < 10 ? "0" : "")\(h):\(m < 10 ? "0" : "")\(m)"
        }
        self.init(kind: .fixed(Int64(offsetSeconds) * 1000), identifier: identifier)
    }

    /// An IANA zone (`Europe/Berlin`) or `UTC`; `nil` when the identifier is unknown.
    public init?(identifier: String) {
        if identifier == "UTC" || identifier == "Etc/UTC" || identifier == "GMT" {
            self.init(offsetSeconds: 0)
            return
        }
        guard let tz = TimeZone(identifier: identifier) else { return nil }
        self.init(kind: .named(tz), identifier: identifier)
    }

    private init(kind: Kind, identifier: String) {
        self.kind = kind
        self.identifier = identifier
    }

    /// The offset from UTC in force at `utcMillis`, in milliseconds (east positive).
    public func offsetMillis(at utcMillis: Int64) -> Int64 {
        switch kind {
        case .fixed(let o): return o
        case .named(let tz):
            let seconds = Double(Civil.floorDiv(utcMillis, 1000))
            return Int64(tz.secondsFromGMT(for: Date(timeIntervalSince1970: seconds))) * 1000
        }
    }

    /// The identifier.
    public var description: String { identifier }

    /// Decodes from the identifier string.
    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        if let z = CronTimeZone(identifier: s) {
            self = z
        } else if let z = CronTimeZone(fixedIdentifier: s) {
            self = z
        } else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "unknown time zone '\(s)'"))
        }
    }

    /// Encodes as the identifier string.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(identifier)
    }

    private init?(fixedIdentifier s: String) {
        guard s.hasPrefix("UTC"), s.count == 9 else { return nil }
        let body = Array(s.dropFirst(3))
        guard body[0] == "+" || body[0] == "-", body[3] == ":",
            let h = Int(String(body[1...2])), let m = Int(String(body[4...5]))
        else { return nil }
        self.init(offsetSeconds: (body[0] == "-" ? -1 : 1) * (h * 3600 + m * 60))
    }
}
