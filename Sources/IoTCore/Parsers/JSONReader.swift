/// A JSON value as ``JSONReader`` reads it.
///
/// Objects keep their keys in payload order. A key that appears twice keeps the position of its first
/// occurrence and the value of its last one ("last wins", as JavaScript's `JSON.parse` does).
enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// What kind of value this is, for error messages ("found a string").
    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// One `"key": value` pair of a JSON object.
struct JSONMember: Equatable, Sendable {
    var key: String
    var value: JSONValue
}

extension [JSONMember] {
    /// The value of `key`, or `nil` when the object has no such key.
    subscript(key key: String) -> JSONValue? {
        for member in self where member.key == key { return member.value }
        return nil
    }
}

/// A strict RFC 8259 JSON reader over UTF-8 bytes.
///
/// - Accepts exactly one value surrounded by optional whitespace (space, tab, CR, LF); a leading UTF-8
///   byte order mark is skipped, as RFC 8259 §8.1 allows.
/// - Rejects trailing garbage, leading zeros, `+1`, `.5`, `1.`, unescaped control characters in strings,
///   invalid UTF-8 in strings, unknown escapes and lone UTF-16 surrogates in `\u` escapes.
/// - Numbers convert exactly as `Double(String)` does (correctly rounded); a number too large for a
///   `Double` (it would become infinity) is rejected.
/// - Nesting deeper than ``maxDepth`` arrays and objects is rejected before it can exhaust the stack.
/// - Duplicate keys: last wins (see ``JSONValue``).
///
/// Errors are ``IoTError/Code/malformedPayload`` and name the byte offset and what was expected:
/// `invalid JSON at byte 17: expected ':' after object key, found '"'`.
struct JSONReader {
    /// The default nesting limit of arrays and objects.
    static let defaultMaxDepth = 64

    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var index: Int = 0
    private var depth: Int = 0

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Reads one JSON document.
    static func read(_ payload: [UInt8], maxDepth: Int = defaultMaxDepth) throws(IoTError) -> JSONValue {
        let result: Result<JSONValue, IoTError> = payload.withUnsafeBufferPointer { buffer in
            var reader = JSONReader(bytes: buffer, maxDepth: maxDepth)
            do throws(IoTError) {
                return .success(try reader.document())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    // MARK: Structure

    private mutating func document() throws(IoTError) -> JSONValue {
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { index = 3 }
        skipWhitespace()
        let value = try readValue()
        skipWhitespace()
        if index < bytes.count { throw error("expected end of input after the top-level value") }
        return value
    }

    private mutating func readValue() throws(IoTError) -> JSONValue {
        guard index < bytes.count else {
            throw error("expected a value (object, array, string, number, true, false or null)")
        }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try readObject()
        case UInt8(ascii: "["): return try readArray()
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"):
            try readLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try readLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try readLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try readNumber())
        default: throw error("expected a value (object, array, string, number, true, false or null)")
        }
    }

    private mutating func enter() throws(IoTError) {
        depth += 1
        if depth > maxDepth { throw error("nesting deeper than \(maxDepth) arrays and objects") }
    }

    private mutating func readArray() throws(IoTError) -> JSONValue {
        try enter()
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try readValue())
            skipWhitespace()
            guard index < bytes.count else { throw error("expected ',' or ']' in array") }
            let c = bytes[index]
            index += 1
            if c == UInt8(ascii: ",") { continue }
            if c == UInt8(ascii: "]") { break }
            index -= 1
            throw error("expected ',' or ']' in array")
        }
        depth -= 1
        return .array(elements)
    }

    private mutating func readObject() throws(IoTError) -> JSONValue {
        try enter()
        index += 1  // {
        var members: [JSONMember] = []
        var positions: [String: Int]? = nil  // built once an object grows large, for duplicate lookup
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw error("expected '\"' to start an object key")
            }
            let key = try readString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw error("expected ':' after object key")
            }
            index += 1
            skipWhitespace()
            let value = try readValue()
            // Duplicate keys: last value wins, first position stays.
            if let existing = Self.position(of: key, in: members, positions: &positions) {
                members[existing].value = value
            } else {
                positions?[key] = members.count
                members.append(JSONMember(key: key, value: value))
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("expected ',' or '}' in object") }
            let c = bytes[index]
            index += 1
            if c == UInt8(ascii: ",") { continue }
            if c == UInt8(ascii: "}") { break }
            index -= 1
            throw error("expected ',' or '}' in object")
        }
        depth -= 1
        return .object(members)
    }

    private static func position(of key: String, in members: [JSONMember], positions: inout [String: Int]?) -> Int? {
        if let positions { return positions[key] }
        if members.count < 16 {
            for i in members.indices where members[i].key == key { return i }
            return nil
        }
        var built: [String: Int] = [:]
        built.reserveCapacity(members.count * 2)
        for i in members.indices { built[members[i].key] = i }
        positions = built
        return built[key]
    }

    private mutating func readLiteral(_ literal: StaticString) throws(IoTError) {
        let start = index
        let text = literal.utf8Start
        for k in 0..<literal.utf8CodeUnitCount {
            guard index < bytes.count, bytes[index] == text[k] else {
                let expected = "\(literal)"
                if index == start { throw error("expected '\(expected)'") }
                throw error("expected '\(expected)' (started at byte \(start))")
            }
            index += 1
        }
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    // MARK: Numbers

    private static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    private mutating func readNumber() throws(IoTError) -> Double {
        let start = index
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        // Integer part: 0 | [1-9][0-9]*
        guard index < bytes.count, isDigit(bytes[index]) else { throw error("expected a digit after '-'") }
        var mantissa: UInt64 = 0
        var significantDigits = 0  // digits accumulated into mantissa, leading zeros excluded
        var exponentAdjust = 0
        var exact = true  // mantissa holds every digit (at most 19)
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, isDigit(bytes[index]) { throw error("expected no leading zero in a number") }
        } else {
            while index < bytes.count, isDigit(bytes[index]) {
                accumulate(bytes[index], &mantissa, &significantDigits, &exact, &exponentAdjust, fraction: false)
                index += 1
            }
        }
        // Fraction: . [0-9]+
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("expected a digit after '.'") }
            while index < bytes.count, isDigit(bytes[index]) {
                accumulate(bytes[index], &mantissa, &significantDigits, &exact, &exponentAdjust, fraction: true)
                index += 1
            }
        }
        // Exponent: [eE] [+-]? [0-9]+
        var exponent = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            var exponentNegative = false
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("expected a digit in the exponent") }
            while index < bytes.count, isDigit(bytes[index]) {
                if exponent < 100_000 { exponent = exponent * 10 + Int(bytes[index] &- UInt8(ascii: "0")) }
                index += 1
            }
            if exponentNegative { exponent = -exponent }
        }
        // Clinger's fast path: mantissa and 10^|e| are exact doubles, so one multiplication or division
        // rounds correctly, giving the same result as Double(String).
        let e = exponent + exponentAdjust
        if exact, mantissa < (1 << 53), e >= -22, e <= 22 {
            let m = Double(mantissa)
            let value = e >= 0 ? m * Self.powersOfTen[e] : m / Self.powersOfTen[-e]
            return negative ? -value : value
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw IoTError.malformed(
                "invalid JSON at byte \(start): number \(text) is out of range; expected one that fits a 64-bit float")
        }
        return value
    }

    @inline(__always)
    private func accumulate(
        _ digit: UInt8, _ mantissa: inout UInt64, _ significantDigits: inout Int, _ exact: inout Bool,
        _ exponentAdjust: inout Int, fraction: Bool
    ) {
        let d = UInt64(digit &- UInt8(ascii: "0"))
        if significantDigits == 0 && d == 0 {
            if fraction { exponentAdjust -= 1 }
            return
        }
        if significantDigits < 19 {
            mantissa = mantissa &* 10 &+ d
            significantDigits += 1
            if fraction { exponentAdjust -= 1 }
        } else {
            // Too many digits for the fast path; the slow path reparses the text.
            exact = false
        }
    }

    @inline(__always)
    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    // MARK: Strings

    private mutating func readString() throws(IoTError) -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes.
        var ascii = true
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                let s = try decodeUTF8(start..<index, ascii: ascii)
                index += 1
                return s
            }
            if c >= 0x80 { ascii = false }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("expected a control character (byte < 0x20) in a string to be escaped") }
            index += 1
        }
        guard index < bytes.count else {
            throw error("expected '\"' to close the string that starts at byte \(start - 1)")
        }
        // Slow path: copy what we have, then decode escapes.
        var buffer: [UInt8] = []
        buffer.reserveCapacity(index - start + 16)
        buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                index += 1
                guard let s = String(validating: buffer, as: UTF8.self) else {
                    index = start
                    throw error("expected valid UTF-8 in the string")
                }
                return s
            }
            if c < 0x20 { throw error("expected a control character (byte < 0x20) in a string to be escaped") }
            if c != UInt8(ascii: "\\") {
                buffer.append(c)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { break }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): buffer.append(0x22)
            case UInt8(ascii: "\\"): buffer.append(0x5C)
            case UInt8(ascii: "/"): buffer.append(0x2F)
            case UInt8(ascii: "b"): buffer.append(0x08)
            case UInt8(ascii: "f"): buffer.append(0x0C)
            case UInt8(ascii: "n"): buffer.append(0x0A)
            case UInt8(ascii: "r"): buffer.append(0x0D)
            case UInt8(ascii: "t"): buffer.append(0x09)
            case UInt8(ascii: "u"): try readUnicodeEscape(into: &buffer)
            default:
                index -= 1
                throw error("expected an escape character (\" \\ / b f n r t u) after '\\'")
            }
        }
        throw error("expected '\"' to close the string that starts at byte \(start - 1)")
    }

    /// Reads the `XXXX` of a `\uXXXX` escape (and a following low surrogate) and appends its UTF-8.
    private mutating func readUnicodeEscape(into buffer: inout [UInt8]) throws(IoTError) {
        let escapeStart = index - 2
        var scalar = try readHex4()
        if scalar >= 0xD800 && scalar <= 0xDBFF {
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else {
                index = escapeStart
                throw error("lone high surrogate; expected a \\uDC00-\\uDFFF escape to follow it")
            }
            index += 2
            let low = try readHex4()
            guard low >= 0xDC00 && low <= 0xDFFF else {
                index = escapeStart
                throw error("lone high surrogate; expected a \\uDC00-\\uDFFF escape to follow it")
            }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
            index = escapeStart
            throw error("lone low surrogate; expected a \\uD800-\\uDBFF escape before it")
        }
        // Encode as UTF-8.
        if scalar < 0x80 {
            buffer.append(UInt8(scalar))
        } else if scalar < 0x800 {
            buffer.append(UInt8(0xC0 | (scalar >> 6)))
            buffer.append(UInt8(0x80 | (scalar & 0x3F)))
        } else if scalar < 0x10000 {
            buffer.append(UInt8(0xE0 | (scalar >> 12)))
            buffer.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            buffer.append(UInt8(0x80 | (scalar & 0x3F)))
        } else {
            buffer.append(UInt8(0xF0 | (scalar >> 18)))
            buffer.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            buffer.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            buffer.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }

    private mutating func readHex4() throws(IoTError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count else { throw error("expected 4 hex digits after '\\u'") }
            let c = bytes[index]
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("expected 4 hex digits after '\\u'")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private func decodeUTF8(_ range: Range<Int>, ascii: Bool) throws(IoTError) -> String {
        let slice = UnsafeBufferPointer(rebasing: bytes[range])
        // ASCII is valid UTF-8; skip the validator for the common case.
        if ascii { return String(decoding: slice, as: UTF8.self) }
        guard let s = String(validating: slice, as: UTF8.self) else {
            var offset = range.lowerBound
            // Point at the first byte of the invalid sequence when we can find it cheaply.
            var it = slice.makeIterator()
            var decoder = UTF8()
            var position = range.lowerBound
            decoding: while true {
                switch decoder.decode(&it) {
                case .scalarValue(let scalar): position += UTF8.width(scalar)
                case .emptyInput: break decoding
                case .error:
                    offset = position
                    break decoding
                }
            }
            throw IoTError.malformed("invalid JSON at byte \(offset): expected valid UTF-8 in the string")
        }
        return s
    }

    // MARK: Errors

    private func error(_ expected: String) -> IoTError {
        IoTError.malformed("invalid JSON at byte \(index): \(expected), found \(describeCurrent())")
    }

    private func describeCurrent() -> String {
        guard index < bytes.count else { return "end of input" }
        let c = bytes[index]
        if c >= 0x20 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        let hex = String(c, radix: 16, uppercase: true)
        return "byte 0x\(hex.count == 1 ? "0" + hex : hex)"
    }
}
