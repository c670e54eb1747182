/// The documented ranges of the numbers that come from outside (the management API, the configuration
/// file, devices): whatever is refused outside them, and whatever arithmetic is done with them inside them,
/// cannot overflow.
///
/// A duration of ``maxDurationMillis`` added to a time of ``maxTimeMillis`` is still far from `Int64.max`,
/// so the rule engine, the scheduler and the transports may add and compare them freely; where a value
/// could still come from elsewhere (an integrator's own code, a stored definition), they use the
/// saturating operations below, which never trap.
public enum IoTLimits {
    /// The longest duration in milliseconds a setting may have: 10 years (315,360,000,000 ms). Intervals,
    /// tolerances, debounce durations, windows and lead times above it are refused.
    public static let maxDurationMillis: Int64 = 315_360_000_000

    /// The latest time a record may carry, in milliseconds since 1970: 2^53 − 1 (the largest whole number a
    /// JSON number holds exactly, in the year 287,396).
    public static let maxTimeMillis: Int64 = 9_007_199_254_740_991

    /// The longest device, signal, product or tenant name, in UTF-8 bytes.
    public static let maxNameBytes = 128

    /// Checks a device uid or product id, on every path (the management API, the configuration file, a
    /// device's own message): 1 to 128 printable ASCII characters other than space, `/`, `?`, `#` and `%`,
    /// so it stands unescaped in a URL path and an MQTT topic level.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming `what` and the rule.
    public static func checkIdentifier(_ value: String, _ what: String) throws(IoTError) {
        let ok =
            !value.isEmpty && value.utf8.count <= maxNameBytes
            && value.utf8.allSatisfy { c in c > 0x20 && c < 0x7F && c != 0x2F && c != 0x3F && c != 0x23 && c != 0x25 }
        guard ok else {
            throw IoTError(
                .invalidArgument,
                "\(what) \"\(value.prefix(64))\"\(value.utf8.count > 64 ? "…" : "") is not valid; use 1–128 printable ASCII characters without spaces, '/', '?', '#' or '%'"
            )
        }
    }

    /// Checks a signal name, on every path: 1 to 128 bytes of UTF-8 without control characters
    /// (U+0000–U+001F, U+007F–U+009F). Any other character is allowed; in a URL path it is percent-encoded
    /// (`%RH` is `%25RH`).
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming `what` and the rule.
    public static func checkSignalName(_ value: String, _ what: String = "signal name") throws(IoTError) {
        let ok =
            !value.isEmpty && value.utf8.count <= maxNameBytes
            && value.unicodeScalars.allSatisfy { s in s.value >= 0x20 && !(0x7F...0x9F).contains(s.value) }
        guard ok else {
            throw IoTError(
                .invalidArgument,
                "\(what) \"\(value.prefix(64).unicodeScalars.map { $0.value < 0x20 ? "?" : String($0) }.joined())\"\(value.utf8.count > 64 ? "…" : "") (\(value.utf8.count) bytes) is not valid; use 1–128 bytes of UTF-8 without control characters"
            )
        }
    }

    /// Checks that `value` is a duration within `minimum ... maxDurationMillis`.
    ///
    /// - Parameters:
    ///   - value: the duration in milliseconds.
    ///   - field: the field's name, as the caller's user wrote it (`"toleranceMillis"`).
    ///   - minimum: the shortest duration allowed (0 or 1).
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the field and the range.
    public static func checkDuration(_ value: Int64, _ field: String, minimum: Int64 = 1) throws(IoTError) {
        guard value >= minimum && value <= maxDurationMillis else {
            throw IoTError(
                .invalidArgument,
                "\(field) is \(value); expected milliseconds from \(minimum) to \(maxDurationMillis) (10 years)")
        }
    }

    /// Checks that a count or size setting lies in its documented range.
    ///
    /// - Parameters:
    ///   - value: the setting.
    ///   - field: the field's name, as the caller's user wrote it (`"maxAttempts"`).
    ///   - range: the values allowed.
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the field and the range.
    public static func checkCount(_ value: Int, _ field: String, in range: ClosedRange<Int>) throws(IoTError) {
        guard range.contains(value) else {
            throw IoTError(
                .invalidArgument, "\(field) is \(value); expected \(range.lowerBound) to \(range.upperBound)")
        }
    }

    /// Checks that a duration setting in milliseconds lies in `range` (narrower than ``checkDuration(_:_:minimum:)``).
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the field and the range.
    public static func checkMillis(_ value: Int64, _ field: String, in range: ClosedRange<Int64>) throws(IoTError) {
        guard range.contains(value) else {
            throw IoTError(
                .invalidArgument,
                "\(field) is \(value); expected milliseconds from \(range.lowerBound) to \(range.upperBound)")
        }
    }
}

extension Int64 {
    /// `self + other`, or `Int64.max` / `Int64.min` where the sum does not fit: a time plus a duration that
    /// came from outside never traps.
    @inlinable
    public func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }

    /// `self - other`, or `Int64.max` / `Int64.min` where the difference does not fit.
    @inlinable
    public func saturatingSubtract(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        guard overflow else { return difference }
        return other > 0 ? .min : .max
    }

    /// `self * other`, or `Int64.max` / `Int64.min` where the product does not fit.
    @inlinable
    public func saturatingMultiply(_ other: Int64) -> Int64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        guard overflow else { return product }
        return (self < 0) == (other < 0) ? .max : .min
    }
}
