public import IoTCore

/// A text with `${name}` placeholders, parsed once.
///
/// - `${name}` is replaced by the variable `name`; `${device.name}` walks a dotted path (the variable
///   is looked up under its full dotted name).
/// - `$${` writes a literal `${` (so `$${name}` renders as `${name}`); a `$` not followed by `{` is
///   just a dollar sign.
/// - Names are 1–64 characters of `A–Z a–z 0–9 _ - .`; an unclosed `${` or an empty or malformed name
///   is an error when the template is parsed, not when it is rendered.
///
/// ```swift
/// let t = try Template("Device ${device_name} raised a ${alert_type} alarm at ${timestamp}")
/// try t.validate(known: TemplateKind.alarmRaised.variables)   // unknown names throw, with the name
/// let text = t.render(["device_name": "pump-1", "alert_type": "overheat", "timestamp": "2026-11-26T12:00:00Z"])
/// ```
public struct Template: Sendable, Hashable {
    enum Part: Sendable, Hashable {
        case literal(String)
        case variable(String)
    }

    /// The source text.
    public let source: String
    let parts: [Part]

    /// The variable names the template uses, in order of first use.
    public var variables: [String] {
        var seen: Set<String> = []
        var out: [String] = []
        for case .variable(let name) in parts where seen.insert(name).inserted { out.append(name) }
        return out
    }

    /// Parses `source`.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the offset of an unclosed `${` or a bad name.
    public init(_ source: String) throws(IoTError) {
        self.source = source
        var parts: [Part] = []
        var literal = ""
        let chars = Array(source.unicodeScalars)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "$", i + 1 < chars.count {
                if chars[i + 1] == "$", i + 2 < chars.count, chars[i + 2] == "{" {
                    literal += "${"
                    i += 3
                    continue
                }
                if chars[i + 1] == "{" {
                    guard let close = chars[(i + 2)...].firstIndex(of: "}") else {
                        throw IoTError(
                            .invalidArgument,
                            "the template has an unclosed \"${\" at character \(i); close it with \"}\" or write \"$${\" for a literal \"${\""
                        )
                    }
                    var name = ""
                    name.unicodeScalars.append(contentsOf: chars[(i + 2)..<close])
                    name = name.trimmingSpaces()
                    guard Self.isValidName(name) else {
                        throw IoTError(
                            .invalidArgument,
                            "the template has an invalid variable name \"\(name)\" at character \(i); use letters, digits, '_', '-' and '.'"
                        )
                    }
                    if !literal.isEmpty {
                        parts.append(.literal(literal))
                        literal = ""
                    }
                    parts.append(.variable(name))
                    i = close + 1
                    continue
                }
            }
            literal.unicodeScalars.append(c)
            i += 1
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64, !name.hasPrefix("."), !name.hasSuffix("."), !name.contains("..")
        else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
                || c == 0x2E
        }
    }

    /// Checks that every variable is in `known`.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` whose message names the first unknown variable and
    ///   lists the known ones.
    public func validate(known: Set<String>) throws(IoTError) {
        if let unknown = variables.first(where: { !known.contains($0) }) {
            throw IoTError(
                .invalidArgument,
                "unknown variable \"\(unknown)\" in template; known variables: \(known.sorted().joined(separator: ", "))"
            )
        }
    }

    /// Renders with `values`; a variable without a value renders as an empty string (``validate(known:)``
    /// is what keeps that from happening).
    public func render(_ values: [String: String], escape: (String) -> String = { $0 }) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let s): out += s
            case .variable(let name): out += escape(values[name] ?? "")
            }
        }
        return out
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
