/// `s` as a JSON string literal, quoted and escaped.
package func jsonString(_ s: String) -> String {
    "\"" + jsonEscaped(s) + "\""
}

/// `s` escaped for the inside of a JSON string literal (RFC 8259 §7), without the quotes: `"`, `\\` and the
/// control characters are escaped, everything else is kept.
package func jsonEscaped(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out
}
