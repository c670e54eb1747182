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

extension CSV {
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
}
