public import IoTCore

/// A cron schedule: 5 fields (`minute hour day-of-month month day-of-week`) or 6 with seconds first.
///
/// Each field takes `*`, a value, a list (`1,15`), a range (`9-17`), and steps (`*/5`, `10-30/5`,
/// `7/10`). Months take `JAN`–`DEC`, days of week `SUN`–`SAT` (any case); `0` and `7` are Sunday.
/// When both day-of-month and day-of-week are restricted (neither starts with `*`), a day matches if
/// *either* matches, as in Vixie cron: `0 0 1,15 * MON` fires on the 1st, the 15th and every Monday.
///
/// ```swift
/// let every5 = try CronExpression("*/5 * * * *")
/// let businessHours = try CronExpression("0 0 9-17 * * MON-FRI")   // 6 fields: seconds first
/// let next = businessHours.next(after: clock.now(), in: CronTimeZone(identifier: "Europe/Berlin")!)
/// ```
///
/// See ``next(after:in:)`` for how daylight-saving changes are handled.
public struct CronExpression: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The expression as written.
    public let source: String
    let seconds: UInt64
    let minutes: UInt64
    let hours: UInt64
    let daysOfMonth: UInt64
    let months: UInt64
    let daysOfWeek: UInt64
    let domStar: Bool
    let dowStar: Bool
    /// The hour field is `*` (all hours, no step): such a schedule runs by elapsed time through a
    /// repeated daylight-saving hour.
    let hourWildcard: Bool

    /// Parses an expression; throws ``IoTCore/IoTError/Code/invalidArgument`` naming the bad field.
    public init(_ source: String) throws(IoTError) {
        self.source = source
        let fields = source.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw IoTError(
                .invalidArgument,
                "cron expression '\(source)' has \(fields.count) fields; write 5 (minute hour day month weekday) or 6 (seconds first)"
            )
        }
        let f = fields.count == 6 ? fields : ["0"] + fields
        seconds = try Self.field(f[0], "second", 0, 59, names: [:])
        minutes = try Self.field(f[1], "minute", 0, 59, names: [:])
        hours = try Self.field(f[2], "hour", 0, 23, names: [:])
        daysOfMonth = try Self.field(f[3], "day of month", 1, 31, names: [:])
        months = try Self.field(f[4], "month", 1, 12, names: Self.monthNames)
        var dow = try Self.field(f[5], "day of week", 0, 7, names: Self.dayNames)
        if dow & (1 << 7) != 0 { dow = (dow | 1) & ~(1 << 7) }
        daysOfWeek = dow
        domStar = f[3].hasPrefix("*") || f[3] == "?"
        dowStar = f[5].hasPrefix("*") || f[5] == "?"
        hourWildcard = f[2] == "*"
    }

    /// The expression as written.
    public var description: String { source }

    /// Decodes from the expression string.
    public init(from decoder: any Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self))
    }

    /// Encodes as the expression string.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(source)
    }

    static let monthNames: [String: Int] = [
        "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
        "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
    ]
    static let dayNames: [String: Int] = ["SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6]

    private static func field(_ text: String, _ name: String, _ lo: Int, _ hi: Int, names: [String: Int])
        throws(IoTError) -> UInt64
    {
        func bad(_ why: String) -> IoTError {
            IoTError(.invalidArgument, "cron \(name) field '\(text)': \(why); allowed \(lo)-\(hi)")
        }
        func value(_ s: Substring) throws(IoTError) -> Int {
            if let v = Int(s) {
                guard v >= lo && v <= hi else { throw bad("\(v) is out of range") }
                return v
            }
            if let v = names[s.uppercased()] { return v }
            throw bad("'\(s)' is not a number\(names.isEmpty ? "" : " or name")")
        }
        if text == "?" && (name == "day of month" || name == "day of week") { return Self.bits(lo, hi, 1) }
        var mask: UInt64 = 0
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw bad("empty list item") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw bad("more than one '/'") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s > 0 else { throw bad("step '\(pieces[1])' must be a positive number") }
                step = s
            }
            let range = pieces[0]
            var a: Int
            var b: Int
            if range == "*" {
                a = lo
                b = hi
            } else if let dash = range.firstIndex(of: "-") {
                a = try value(range[range.startIndex..<dash])
                b = try value(range[range.index(after: dash)...])
                guard a <= b else { throw bad("range \(range) runs backwards") }
            } else {
                a = try value(range)
                b = pieces.count == 2 ? hi : a
            }
            if name == "day of week" && range == "*" { b = 6 }
            mask |= Self.bits(a, b, step)
        }
        return mask
    }

    private static func bits(_ a: Int, _ b: Int, _ step: Int) -> UInt64 {
        var m: UInt64 = 0
        var v = a
        while v <= b {
            m |= 1 << UInt64(v)
            // A step as large as Int.max (`1/9223372036854775807`) ends the field instead of overflowing.
            let (next, overflow) = v.addingReportingOverflow(step)
            if overflow { break }
            v = next
        }
        return m
    }

    @inline(__always) static func has(_ mask: UInt64, _ v: Int) -> Bool { mask & (1 << UInt64(v)) != 0 }

    /// Whether the schedule fires on a local calendar day.
    func matchesDay(year: Int, month: Int, day: Int, weekday: Int) -> Bool {
        guard Self.has(months, month) else { return false }
        let dom = Self.has(daysOfMonth, day)
        let dow = Self.has(daysOfWeek, weekday)
        if domStar || dowStar { return dom && dow }
        return dom || dow
    }
}
