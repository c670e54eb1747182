/// CSV text: a header line, then one line per row; text values are quoted when needed. The API's CSV and the
/// reports' attachments are written with it.
package enum CSV {
    /// One field. A text value that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a
    /// tab or a carriage return) gets a leading `'`, as OWASP recommends against CSV injection; numbers and
    /// booleans are written as they are.
    package static func field(_ value: SignalValue?) -> String {
        switch value {
        case nil: return ""
        case .number(let v)?: return v.description
        case .bool(let b)?: return b.description
        case .text(var s)?:
            if let first = s.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { s = "'" + s }
            guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
            return "\"" + s.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
        }
    }

    /// A text field (quoted and guarded as ``field(_:)`` does); empty for `nil`.
    package static func text(_ value: String?) -> String { value.map { field(.text($0)) } ?? "" }

    /// Alarms as CSV, one row each, in the order given.
    package static func alarms(_ alarms: [Alarm]) -> String {
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
    package static func statisticsResults(_ results: [StatisticsResult]) -> String {
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

    /// A download file name made of `parts`: letters, digits, `.`, `-` and `_` are kept, anything else (quotes,
    /// slashes, control characters, non-ASCII) becomes `_`, so no device uid or signal name can break the
    /// `Content-Disposition` header or name a path.
    package static func fileName(_ parts: [String], extension ext: String = "csv") -> String {
        let safe = parts.joined(separator: "-").unicodeScalars.map { c -> Character in
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "." || c == "-" || c == "_")
                ? Character(c) : "_"
        }
        return String(safe.prefix(200)) + "." + ext
    }
}
