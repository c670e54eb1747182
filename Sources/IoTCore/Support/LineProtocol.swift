/// InfluxDB line protocol (1.x and 2.x): `<measurement>[,<tag>=<value>…] <field>=<value> <time in ns>`.
/// Numbers are floats, booleans `true`/`false`, text a quoted string; names, tags and strings are escaped as
/// InfluxDB reads them (a newline, which no line may hold, becomes `\n`).
package enum LineProtocol {
    /// One line, with its newline. `time` is in milliseconds; a time too large for nanoseconds is left out
    /// (InfluxDB then stamps the point itself).
    package static func line(
        measurement: String, tags: [(String, String)], field: String, value: SignalValue, time: Int64
    ) -> String {
        let encoded: String
        switch value {
        case .number(let v): encoded = v.isFinite ? v.description : "\"\(v)\""
        case .bool(let b): encoded = b ? "true" : "false"
        case .text(let s): encoded = "\"" + escape(s, ["\\", "\""]) + "\""
        }
        var line = escape(measurement, [",", " "])
        for (key, value) in tags {
            line += "," + escape(key, [",", "=", " "]) + "=" + escape(value, [",", "=", " "])
        }
        line += " " + escape(field, [",", "=", " "]) + "=" + encoded
        let nanoseconds = time.multipliedReportingOverflow(by: 1_000_000)
        if !nanoseconds.overflow { line += " \(nanoseconds.partialValue)" }
        return line + "\n"
    }

    /// `text` with each of `characters` escaped with a backslash, and newlines as `\n`.
    package static func escape(_ text: String, _ characters: Set<Character>) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            if c == "\n" {
                out += "\\n"
                continue
            }
            if characters.contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }
}
