import Testing

@testable import IoTCore

@Suite struct JSONReaderTests {
    private func read(_ text: String) throws(IoTError) -> JSONValue {
        try JSONReader.read(Array(text.utf8))
    }

    @Test(arguments: [
        ("null", JSONValue.null),
        (" true ", .bool(true)),
        ("\n\tfalse\r\n", .bool(false)),
        ("0", .number(0)),
        ("-0", .number(-0.0)),
        ("21.5", .number(21.5)),
        (#""""#, .string("")),
        (#""héllo wörld ☃""#, .string("héllo wörld ☃")),
        ("[]", .array([])),
        ("{}", .object([])),
        (
            #"[1, "a", [true], {"k": null}]"#,
            .array([.number(1), .string("a"), .array([.bool(true)]), .object([JSONMember(key: "k", value: .null)])])
        ),
        (
            #"{"b": 1, "a": 2}"#,
            .object([JSONMember(key: "b", value: .number(1)), JSONMember(key: "a", value: .number(2))])
        ),
        ("\u{FEFF}[1]", .array([.number(1)])),
    ])
    func values(text: String, expected: JSONValue) throws {
        #expect(try read(text) == expected)
    }

    @Test(arguments: [
        "0", "-0", "1", "-1", "21.5", "0.1", "0.3", "1e10", "1E-7", "1.5e+3", "123456789012345678",
        "9007199254740993", "1700000000123", "2.2250738585072014e-308", "4.9e-324", "1.7976931348623157e308",
        "0.1000000000000000055511151231257827", "3.141592653589793238462643383279", "1e22", "1e23", "1e-22",
        "1e-23", "123.456e-300", "0.000000000000000000000000001", "100000000000000000000000",
        "1.276020076001e+09", "-12345.6789e-3", "0e99999", "5e-400",
    ])
    func numbersMatchDoubleFromString(text: String) throws {
        let value = try read(text)
        let expected = try #require(Double(text))
        guard case .number(let n) = value else {
            Issue.record("\(text) read as \(value)")
            return
        }
        #expect(n.bitPattern == expected.bitPattern, "\(text): \(n) != \(expected)")
    }

    @Test(arguments: [
        ("", "at byte 0: expected a value"),
        ("   ", "at byte 3: expected a value"),
        (#"{"a" 1}"#, "at byte 5: expected ':' after object key, found '1'"),
        (#"{"a":1,}"#, "at byte 7: expected '\"' to start an object key"),
        (#"{a:1}"#, "at byte 1: expected '\"' to start an object key"),
        (#"{"a":1"#, "at byte 6: expected ',' or '}' in object, found end of input"),
        ("[1 2]", "at byte 3: expected ',' or ']' in array, found '2'"),
        ("[1,]", "at byte 3: expected a value"),
        ("[1] x", "at byte 4: expected end of input after the top-level value, found 'x'"),
        ("{} {}", "at byte 3: expected end of input"),
        ("01", "at byte 1: expected no leading zero"),
        ("-01", "at byte 2: expected no leading zero"),
        ("+1", "at byte 0: expected a value"),
        (".5", "at byte 0: expected a value"),
        ("1.", "at byte 2: expected a digit after '.'"),
        ("1.e5", "at byte 2: expected a digit after '.'"),
        ("-", "at byte 1: expected a digit after '-'"),
        ("1e", "at byte 2: expected a digit in the exponent"),
        ("1e+", "at byte 3: expected a digit in the exponent"),
        ("1e400", "at byte 0: number 1e400 is out of range"),
        ("-1e400", "at byte 0: number -1e400 is out of range"),
        ("tru", "at byte 3: expected 'true'"),
        ("nul1", "at byte 3: expected 'null'"),
        ("True", "at byte 0: expected a value"),
        (#""abc"#, "at byte 4: expected '\"' to close the string that starts at byte 0"),
        (#""a\"#, "expected '\"' to close the string"),
        (#""\x""#, "at byte 2: expected an escape character"),
        (#""\u12""#, "at byte 5: expected 4 hex digits after '\\u'"),
        (#""\ud800""#, "at byte 1: lone high surrogate"),
        (#""\ud800\u0041""#, "at byte 1: lone high surrogate"),
        (#""\udc00""#, "at byte 1: lone low surrogate"),
        (
            "\"a\u{01}\"",
            "at byte 2: expected a control character (byte < 0x20) in a string to be escaped, found byte 0x01"
        ),
        ("\"a\\n\u{0A}\"", "at byte 4: expected a control character"),
        ("NaN", "at byte 0: expected a value"),
        ("[Infinity]", "at byte 1: expected a value"),
    ])
    func errors(text: String, expected: String) {
        do {
            let value = try read(text)
            Issue.record("\(text.debugDescription) read as \(value), expected an error containing \(expected)")
        } catch {
            #expect(error.code == .malformedPayload)
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func invalidUTF8IsRejected() {
        for bytes: [UInt8] in [
            [0x22, 0xFF, 0x22], [0x22, 0x61, 0xC3, 0x22], [0x22, 0x5C, 0x6E, 0xED, 0xA0, 0x80, 0x22],
        ] {
            #expect {
                _ = try JSONReader.read(bytes)
            } throws: { error in
                (error as? IoTError)?.message.contains("expected valid UTF-8") == true
            }
        }
    }

    @Test func escapesDecode() throws {
        let value = try read(#""\"\\\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00 end""#)
        #expect(value == .string("\"\\/\u{08}\u{0C}\n\r\té€😀 end"))
    }

    @Test func duplicateKeysLastWinsAtFirstPosition() throws {
        #expect(
            try read(#"{"a": 1, "b": 2, "a": 3}"#)
                == .object([JSONMember(key: "a", value: .number(3)), JSONMember(key: "b", value: .number(2))]))
        // Large objects use an index for the lookup; same rule.
        let keys = (0..<40).map { #""k\#($0)": \#($0)"# }.joined(separator: ",")
        let value = try read("{\(keys), \"k3\": -1}")
        guard case .object(let members) = value else { throw IoTError.malformed("not an object") }
        #expect(members.count == 40)
        #expect(members[3] == JSONMember(key: "k3", value: .number(-1)))
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try read(ok) }
        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect {
            try read(tooDeep)
        } throws: { error in
            (error as? IoTError)?.message.contains("at byte 64: nesting deeper than 64 arrays and objects") == true
        }
        // A million open brackets must throw, not overflow the stack.
        #expect(throws: IoTError.self) { try JSONReader.read([UInt8](repeating: UInt8(ascii: "["), count: 1_000_000)) }
        let objects = Array(String(repeating: #"{"a":"#, count: 200_000).utf8)
        #expect(throws: IoTError.self) { try JSONReader.read(objects) }
    }
}
