/// How the libraries' `Configuration`s read a configuration file: each key is optional and falls back to
/// the documented default, so a file names only what it changes.
extension KeyedDecodingContainer {
    /// The value of `key`, or `fallback` when the key is missing or null.
    package func decode<T: Decodable>(_ key: Key, or fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }
}

extension IoTLimits {
    /// Checks a configuration setting against its documented range; the message starts with the key, as a
    /// configuration file names it (`cacheSizeKiB: -5 is out of range; use 1 to 16777216`), so that whoever
    /// reads the file can prefix its section (`storage.`).
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the key and the range.
    public static func checkSetting<T: Comparable & Sendable>(
        _ value: T, _ key: String, in range: ClosedRange<T>, unit: String = ""
    ) throws(IoTError) {
        guard range.contains(value) else {
            throw IoTError(
                .invalidArgument,
                "\(key): \(value) is out of range; use \(range.lowerBound) to \(range.upperBound)\(unit.isEmpty ? "" : " " + unit)"
            )
        }
    }
}
