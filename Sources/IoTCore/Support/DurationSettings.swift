/// Time settings are `Duration`s in Swift; configuration files and the API keep their integer keys
/// (`idleTimeoutMillis: 30000`), which these read and write.
extension Duration {
    /// Whole milliseconds, rounded toward zero; `Int64.max` / `Int64.min` where that does not fit.
    public var inMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000)
        guard !overflow else { return seconds > 0 ? .max : .min }
        return whole.saturatingAdd(attoseconds / 1_000_000_000_000_000)
    }

    /// Whole nanoseconds, rounded toward zero; `Int64.max` / `Int64.min` where that does not fit.
    public var inNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds > 0 ? .max : .min }
        return whole.saturatingAdd(attoseconds / 1_000_000_000)
    }
}

extension KeyedDecodingContainer {
    /// The integer milliseconds of `key` as a `Duration`, or `fallback` when the key is missing or null.
    package func decodeMillis(_ key: Key, or fallback: Duration) throws -> Duration {
        try decodeIfPresent(Int64.self, forKey: key).map { .milliseconds($0) } ?? fallback
    }

    /// The integer milliseconds of `key` as a `Duration`, or `nil` when the key is missing or null.
    package func decodeMillisIfPresent(_ key: Key) throws -> Duration? {
        try decodeIfPresent(Int64.self, forKey: key).map { .milliseconds($0) }
    }

    /// The integer seconds of `key` as a `Duration`, or `fallback` when the key is missing or null.
    package func decodeSeconds(_ key: Key, or fallback: Duration) throws -> Duration {
        try decodeIfPresent(Int64.self, forKey: key).map { .seconds($0) } ?? fallback
    }
}

extension KeyedEncodingContainer {
    /// Writes `value` under `key` as integer milliseconds.
    package mutating func encodeMillis(_ value: Duration, forKey key: Key) throws {
        try encode(value.inMilliseconds, forKey: key)
    }

    /// Writes `value` under `key` as integer milliseconds, or nothing when it is `nil`.
    package mutating func encodeMillisIfPresent(_ value: Duration?, forKey key: Key) throws {
        try encodeIfPresent(value?.inMilliseconds, forKey: key)
    }
}

extension IoTLimits {
    /// Checks that a duration setting lies within `minimum ... 10 years`; the message names the setting's
    /// key as a file writes it (`idleTimeoutMillis`) and the value in milliseconds.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the key and the range.
    public static func checkDuration(
        _ value: Duration, _ key: String, minimum: Duration = .milliseconds(1)
    ) throws(IoTError) {
        try checkDuration(value.inMilliseconds, key, minimum: minimum.inMilliseconds)
    }
}
