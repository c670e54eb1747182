/// A per-device rate limit in ThingsBoard's form: `"100:1,2000:60"` allows at most 100 messages per
/// second **and** at most 2000 per 60 seconds.
///
/// Each `count:seconds` pair is a token bucket of `count` tokens that refills at `count / seconds`
/// tokens per second, so short bursts up to `count` pass and the long-run rate is bounded.
///
/// ```swift
/// let limit = try RateLimit(parsing: "100:1,2000:60")
/// limit.rules   // [100 per 1 s, 2000 per 60 s]
/// ```
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    /// One `count:seconds` pair.
    public struct Rule: Sendable, Hashable {
        /// Messages allowed in the window (the bucket's capacity), at least 1.
        public var count: Int
        /// The window in seconds, at least 1.
        public var seconds: Int

        /// Creates a rule.
        public init(count: Int, seconds: Int) {
            self.count = count
            self.seconds = seconds
        }
    }

    /// The rules; a message passes only when every rule allows it.
    public var rules: [Rule]

    /// Creates a limit from rules; throws ``IoTError/Code/invalidArgument`` when there are none or a
    /// count or window is not positive.
    public init(rules: [Rule]) throws(IoTError) {
        guard !rules.isEmpty else {
            throw IoTError(
                .invalidArgument, "a rate limit needs at least one count:seconds rule, e.g. \"100:1,2000:60\"")
        }
        for rule in rules where rule.count < 1 || rule.seconds < 1 {
            throw IoTError(
                .invalidArgument,
                "rate limit rule \(rule.count):\(rule.seconds) is not valid; count and seconds must both be at least 1")
        }
        self.rules = rules
    }

    /// Parses ThingsBoard's form: comma-separated `count:seconds` pairs (spaces allowed).
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the part that is wrong.
    public init(parsing spec: String) throws(IoTError) {
        var rules: [Rule] = []
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false)
        for (i, part) in parts.enumerated() {
            let pair = part.split(separator: ":", omittingEmptySubsequences: false)
            guard pair.count == 2,
                let count = Int(pair[0].trimmingCharacters(in: " ")),
                let seconds = Int(pair[1].trimmingCharacters(in: " ")),
                count >= 1, seconds >= 1
            else {
                throw IoTError(
                    .invalidArgument,
                    "rate limit \"\(spec)\" is not valid: part \(i + 1) \"\(part)\" should be <count>:<seconds> with both at least 1, e.g. \"100:1,2000:60\""
                )
            }
            rules.append(Rule(count: count, seconds: seconds))
        }
        try self.init(rules: rules)
    }

    /// The ThingsBoard form, e.g. `100:1,2000:60`.
    public var description: String { rules.map { "\($0.count):\($0.seconds)" }.joined(separator: ",") }

    /// The longest window, in seconds: after that long without a message a device's buckets are full.
    var longestWindowSeconds: Int { rules.map(\.seconds).max() ?? 1 }
}

extension Substring {
    fileprivate func trimmingCharacters(in character: Character) -> Substring {
        var s = self
        while s.first == character { s.removeFirst() }
        while s.last == character { s.removeLast() }
        return s
    }
}

extension RateLimit: Decodable {
    /// Reads the text form, `"100:1,2000:60"` (``init(parsing:)``); text it refuses is a decoding error with its
    /// message.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let spec = try c.decode(String.self)
        do throws(IoTError) {
            self = try RateLimit(parsing: spec)
        } catch {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: error.message)
        }
    }
}
