import Hummingbird
import IoTCore

/// The query of `GET …/series/{signal}`: `from`, `to`, `agg`, `bucket`, `limit`, `format`.
struct SeriesQuery {
    /// How buckets are reduced to one value.
    enum Aggregate: String, CaseIterable {
        case mean, min, max, sum, count, first, last

        func value(of bucket: AggregateBucket) -> SignalValue? {
            switch self {
            case .mean: bucket.mean.map { .number($0) }
            case .min: bucket.min.map { .number($0) }
            case .max: bucket.max.map { .number($0) }
            case .sum: bucket.sum.map { .number($0) }
            case .count: .number(Double(bucket.count))
            case .first: bucket.first
            case .last: bucket.last
            }
        }
    }

    enum Format: String { case json, csv, lp }

    var from: Int64 = 0
    var to: Int64 = .max
    var aggregate: Aggregate?
    var bucketMillis: Int64?
    var limit: Int?
    var format: Format = .json

    /// Reads the query through `query`, which returns a parameter's value or `nil`.
    init(_ query: (String) -> Substring?, maxPoints: Int) throws {
        if let v = query("from") { from = try Self.time(v, "from") }
        if let v = query("to") { to = try Self.time(v, "to") }
        guard from < to else { throw APIError.badRequest("from (\(from)) must be before to (\(to))") }
        if let v = query("agg") {
            guard let agg = Aggregate(rawValue: String(v)) else {
                throw APIError.badRequest(
                    "agg \"\(v)\" is not known; use one of \(Aggregate.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            aggregate = agg
        }
        if let v = query("bucket") {
            guard aggregate != nil else { throw APIError.badRequest("bucket needs agg; add e.g. agg=mean") }
            bucketMillis = try Self.duration(v)
        }
        if let v = query("limit") {
            guard let n = Int(v), n > 0 else { throw APIError.badRequest("limit \"\(v)\" must be a positive integer") }
            limit = n
        }
        if let v = query("format") {
            guard let f = Format(rawValue: String(v)) else {
                throw APIError.badRequest("format \"\(v)\" is not known; use json, csv or lp (InfluxDB line protocol)")
            }
            format = f
        }
        if format == .lp, aggregate != nil {
            throw APIError.badRequest("format=lp exports raw points; leave agg out, or use json or csv")
        }
        if let bucketMillis {
            let (span, overflow) = to.subtractingReportingOverflow(from)
            if overflow || span / bucketMillis >= Int64(maxPoints) {
                throw APIError.badRequest(
                    "from–to spans more than \(maxPoints) buckets of \(bucketMillis) ms; narrow the range or use a larger bucket"
                )
            }
        }
    }

    /// Milliseconds since the epoch (UTC).
    static func time(_ value: Substring, _ name: String) throws -> Int64 {
        guard let t = Int64(value) else {
            throw APIError.badRequest(
                "\(name) \"\(value)\" must be a time in milliseconds since 1970 (UTC), e.g. 1700000000000")
        }
        return t
    }

    /// `60000`, `30s`, `5m`, `1h`, `1d` → milliseconds.
    static func duration(_ value: Substring) throws -> Int64 {
        let units: [Character: Int64] = ["s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000]
        var digits = value
        var unit: Int64 = 1
        if let last = value.last, let u = units[last] {
            unit = u
            digits = value.dropLast()
        }
        guard let n = Int64(digits), n > 0, n <= Int64.max / unit else {
            throw APIError.badRequest(
                "bucket \"\(value)\" must be milliseconds or a number with s, m, h or d, e.g. 60000 or 1m")
        }
        return n * unit
    }
}

/// CSV text: a header line, then one line per row; text values are quoted when needed.
enum CSV {
    /// One field. A text value that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a
    /// tab or a carriage return) gets a leading `'`, as OWASP recommends against CSV injection; numbers and
    /// booleans are written as they are.
    static func field(_ value: SignalValue?) -> String {
        switch value {
        case nil: return ""
        case .number(let v)?: return v.description
        case .bool(let b)?: return b.description
        case .text(var s)?:
            if let first = s.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { s = "'" + s }
            guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
            return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
    }

    /// A text field (quoted and guarded as ``field(_:)`` does); empty for `nil`.
    static func text(_ value: String?) -> String { value.map { field(.text($0)) } ?? "" }

    /// Alarms as CSV, one row each, in the order given.
    static func alarms(_ alarms: [Alarm]) -> String {
        var csv =
            "id,ruleID,originator,severity,active,acknowledged,open,startTime,ackTime,clearTime,occurrences,lastValue,details\n"
        for a in alarms {
            let row: [String] = [
                text(a.id), text(a.ruleID), text(a.originator), a.severity.rawValue, String(a.active),
                String(a.acknowledged), String(a.isOpen), String(a.startTime), a.ackTime.map(String.init) ?? "",
                a.clearTime.map(String.init) ?? "", String(a.occurrences), field(a.lastValue), text(a.details),
            ]
            csv += row.joined(separator: ",") + "\n"
        }
        return csv
    }

    /// Statistics results as CSV: the job, fire time and window, then one column per result name (the names
    /// of all rows, sorted).
    static func statisticsResults(_ results: [StatisticsResult]) -> String {
        let names = Set(results.flatMap(\.values.keys)).sorted()
        var csv = (["jobID", "fireTime", "windowStart", "windowEnd"] + names.map(text)).joined(separator: ",") + "\n"
        for r in results {
            let row =
                [text(r.jobID), String(r.fireTime), String(r.windowStart), String(r.windowEnd)]
                + names.map { field(r.values[$0]) }
            csv += row.joined(separator: ",") + "\n"
        }
        return csv
    }

    /// A CSV download named by `parts`.
    static func response(_ csv: String, named parts: [String]) -> Response {
        var response = JSONOutput.text(csv, contentType: "text/csv; charset=utf-8")
        response.headers[.contentDisposition] = "attachment; filename=\"\(fileName(parts))\""
        return response
    }

    /// Whether a listing's `format` asks for CSV (`json`, the default, or `csv`).
    ///
    /// - Throws: 400 naming the formats.
    static func wanted(_ format: Substring?) throws -> Bool {
        switch format {
        case nil, "json": return false
        case "csv": return true
        case let other?: throw APIError.badRequest("format \"\(other)\" must be json or csv")
        }
    }

    /// A download file name made of `parts`: letters, digits, `.`, `-` and `_` are kept, anything else (quotes,
    /// slashes, control characters, non-ASCII) becomes `_`, so no device uid or signal name can break the
    /// `Content-Disposition` header or name a path.
    static func fileName(_ parts: [String], extension ext: String = "csv") -> String {
        let safe = parts.joined(separator: "-").unicodeScalars.map { c -> Character in
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "." || c == "-" || c == "_")
                ? Character(c) : "_"
        }
        return String(safe.prefix(200)) + "." + ext
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
