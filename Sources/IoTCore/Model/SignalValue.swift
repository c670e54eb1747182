/// The type of a signal's values.
public enum SignalType: String, Sendable, Hashable, Codable, CaseIterable {
    /// A number, stored as a 64-bit float.
    case number
    /// A UTF-8 string.
    case text
    /// `true` or `false`; aggregates count it as 1 or 0.
    case bool
}

/// One typed value of a signal.
///
/// Parsers produce the value the payload carried; the ``Ingestor`` converts it to the signal's declared
/// ``SignalType`` (see ``converted(to:)``) before it is journaled.
public enum SignalValue: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A number.
    case number(Double)
    /// A string.
    case text(String)
    /// A boolean.
    case bool(Bool)

    /// The type of this value.
    public var type: SignalType {
        switch self {
        case .number: .number
        case .text: .text
        case .bool: .bool
        }
    }

    /// The value as a number for aggregation: numbers as they are, booleans as 1 or 0, text as `nil`.
    public var numericValue: Double? {
        switch self {
        case .number(let v): v
        case .bool(let b): b ? 1 : 0
        case .text: nil
        }
    }

    public var description: String {
        switch self {
        case .number(let v): v.description
        case .text(let s): s
        case .bool(let b): b.description
        }
    }

    /// Converts the value to `type`, or returns `nil` when it has no faithful representation there.
    ///
    /// - number ← text that parses as a finite number, bool (1/0);
    /// - bool ← number 0 or 1, text `true/false/1/0/on/off` (any case);
    /// - text ← any value, in its ``description`` form.
    /// Non-finite numbers (NaN, ±infinity) are never accepted as numbers.
    public func converted(to type: SignalType) -> SignalValue? {
        switch (self, type) {
        case (.number(let v), .number): return v.isFinite ? self : nil
        case (.bool, .bool), (.text, .text): return self
        case (.bool(let b), .number): return .number(b ? 1 : 0)
        case (.text(let s), .number):
            guard let v = Double(s.trimmingSpaces), v.isFinite else { return nil }
            return .number(v)
        case (.number(let v), .bool):
            if v == 0 { return .bool(false) }
            if v == 1 { return .bool(true) }
            return nil
        case (.text(let s), .bool):
            switch s.trimmingSpaces.lowercased() {
            case "true", "1", "on", "yes": return .bool(true)
            case "false", "0", "off", "no": return .bool(false)
            default: return nil
            }
        case (.number(let v), .text): return v.isFinite ? .text(v.description) : nil
        case (.bool(let b), .text): return .text(b.description)
        }
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s.removeLast() }
        return s
    }
}
