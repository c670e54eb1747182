import IoTCore
import IoTTesting
import Testing

@Suite struct JSONParserTests {
    static func message(_ text: String, device: String? = "dev-1") -> InboundMessage {
        InboundMessage(transport: "test", deviceUID: device, text: text, receivedAt: 1_700_000_000_000)
    }

    static let goldenCases: [ParserVerifier.GoldenCase] = [
        .init(
            "flat object", message: message(#"{"ts": 1700000000123, "temp": 21.5, "on": true, "fw": "1.2"}"#),
            expected: [
                DeviceRecord(
                    deviceUID: "dev-1", time: 1_700_000_000_123,
                    values: ["temp": .number(21.5), "on": .bool(true), "fw": .text("1.2")])
            ]),
        .init(
            "flat object without time", message: message(#"{"temp": 21.5}"#),
            expected: [DeviceRecord(deviceUID: "dev-1", values: ["temp": .number(21.5)])]),
        .init(
            "nulls are skipped", message: message(#"{"temp": null, "hum": 40, "ts": null}"#),
            expected: [DeviceRecord(deviceUID: "dev-1", values: ["hum": .number(40)])]),
        .init(
            "ThingsBoard form", message: message(#"{"ts": 1700000000123, "values": {"temp": 21.5, "ts": 3}}"#),
            expected: [
                DeviceRecord(
                    deviceUID: "dev-1", time: 1_700_000_000_123, values: ["temp": .number(21.5), "ts": .number(3)])
            ]),
        .init(
            "ThingsBoard form without time", message: message(#"{"values": {"temp": 1}}"#),
            expected: [DeviceRecord(deviceUID: "dev-1", values: ["temp": .number(1)])]),
        .init(
            "array of both forms, payload order",
            message: message(#"[{"ts": 2, "values": {"a": 1}}, {"ts": 1, "b": "x"}, {"c": false}]"#),
            expected: [
                DeviceRecord(deviceUID: "dev-1", time: 2, values: ["a": .number(1)]),
                DeviceRecord(deviceUID: "dev-1", time: 1, values: ["b": .text("x")]),
                DeviceRecord(deviceUID: "dev-1", values: ["c": .bool(false)]),
            ]),
        .init("empty object", message: message("{}"), expected: []),
        .init("empty array", message: message("[]"), expected: []),
        .init("only a time", message: message(#"{"ts": 5}"#), expected: []),
        .init(
            "gateway form",
            message: message(
                #"{"dev-A": [{"ts": 1700000000000, "values": {"t": 1}}, {"ts": 1700000001000, "values": {"t": 2}}], "dev-B": {"temp": 3}}"#,
                device: "gw-1"),
            expected: [
                DeviceRecord(
                    deviceUID: "gw-1", identificationCode: "dev-A", time: 1_700_000_000_000, values: ["t": .number(1)]),
                DeviceRecord(
                    deviceUID: "gw-1", identificationCode: "dev-A", time: 1_700_000_001_000, values: ["t": .number(2)]),
                DeviceRecord(deviceUID: "gw-1", identificationCode: "dev-B", values: ["temp": .number(3)]),
            ]),
        .init(
            "gateway form without a message device uses the key",
            message: message(#"{"dev-B": {"temp": 3}}"#, device: nil),
            expected: [DeviceRecord(deviceUID: "dev-B", values: ["temp": .number(3)])]),
        .init(
            "gateway device with an empty array", message: message(#"{"dev-A": [], "dev-B": {"x": 1}}"#, device: "gw"),
            expected: [DeviceRecord(deviceUID: "gw", identificationCode: "dev-B", values: ["x": .number(1)])]),
        .init(
            "duplicate keys: last wins", message: message(#"{"a": 1, "a": 2}"#),
            expected: [DeviceRecord(deviceUID: "dev-1", values: ["a": .number(2)])]),
        .init(
            "escaped keys and unicode text", message: message(#"{"t\u00e9mp": "caf\u00e9 ☕"}"#),
            expected: [DeviceRecord(deviceUID: "dev-1", values: ["témp": .text("café ☕")])]),
        .init(
            "ts of zero and large integers",
            message: message(#"[{"ts": 0, "a": 1}, {"ts": 9007199254740991, "a": 2}]"#),
            expected: [
                DeviceRecord(deviceUID: "dev-1", time: 0, values: ["a": .number(1)]),
                DeviceRecord(deviceUID: "dev-1", time: 9_007_199_254_740_991, values: ["a": .number(2)]),
            ]),
        .init(
            "ts written with an exponent is still an integer", message: message(#"{"ts": 1.7e12, "a": 1}"#),
            expected: [DeviceRecord(deviceUID: "dev-1", time: 1_700_000_000_000, values: ["a": .number(1)])]),
    ]

    @Test(arguments: goldenCases)
    func golden(_ golden: ParserVerifier.GoldenCase) {
        let failures = ParserVerifier(JSONParser()).golden([golden])
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func nameIsJSON() {
        #expect(JSONParser().name == "json")
    }

    @Test func layouts() throws {
        let allObjects = Self.message(#"{"a": {"x": 1}, "b": [{"y": 2}]}"#, device: "gw")
        // auto: gateway form.
        #expect(
            try JSONParser().parse(allObjects) == [
                DeviceRecord(deviceUID: "gw", identificationCode: "a", values: ["x": .number(1)]),
                DeviceRecord(deviceUID: "gw", identificationCode: "b", values: ["y": .number(2)]),
            ])
        // device: nested values are malformed.
        let device = JSONParser(configuration: .init(layout: .device))
        #expect {
            try device.parse(allObjects)
        } throws: { error in
            (error as? IoTError)?.message.contains(#"value of "a" is an object"#) == true
        }
        // gateway: a mixed object is still read as devices, and a scalar device value is malformed.
        let gateway = JSONParser(configuration: .init(layout: .gateway))
        #expect {
            try gateway.parse(Self.message(#"{"a": {"x": 1}, "b": 3}"#))
        } throws: { error in
            (error as? IoTError)?.message.contains(#"device "b" is a number; expected an object or an array"#) == true
        }
        // auto: a mixed object is a device payload, so the nested value is malformed.
        #expect(throws: IoTError.self) { try JSONParser().parse(Self.message(#"{"a": {"x": 1}, "b": 3}"#)) }
        // auto: the ThingsBoard form is not mistaken for a gateway device called "values".
        #expect(
            try JSONParser().parse(Self.message(#"{"values": {"x": 1}}"#))
                == [DeviceRecord(deviceUID: "dev-1", values: ["x": .number(1)])])
    }

    @Test func customTimeKey() throws {
        let parser = JSONParser(configuration: .init(timeKey: "time"))
        #expect(
            try parser.parse(Self.message(#"{"time": 7, "ts": 8}"#))
                == [DeviceRecord(deviceUID: "dev-1", time: 7, values: ["ts": .number(8)])])
    }

    @Test func keepRaw() throws {
        let message = Self.message(#"{"a": 1}"#)
        let records = try JSONParser(configuration: .init(keepRaw: true)).parse(message)
        #expect(records.first?.raw == message.payload)
        #expect(try JSONParser().parse(message).first?.raw == nil)
    }

    @Test(arguments: [
        (#"{"x": 1, "temp": {"c": 1}}"#, #"value of "temp" is an object; expected a number, string, boolean or null"#),
        (#"{"x": 1, "temp": [1, 2]}"#, #"value of "temp" is an array"#),
        (#"[{"a": 1}, {"b": {"c": 1}}]"#, #"element 1: value of "b" is an object"#),
        (#"{"ts": 1.5, "a": 1}"#, #""ts" is 1.5; expected whole milliseconds"#),
        (#"{"ts": -1, "a": 1}"#, #""ts" is -1.0; expected whole milliseconds"#),
        (#"{"ts": 1e300, "a": 1}"#, #""ts" is 1e+300; expected whole milliseconds"#),
        (#"{"ts": "1700000000000", "a": 1}"#, #""ts" is a string; expected whole milliseconds"#),
        (#"{"ts": 1, "values": {"a": {"b": 1}}}"#, #"value of "a" is an object"#),
        (#"{"ts": 1, "values": {"a": 1}, "x": 2}"#, #"value of "values" is an object"#),
        (#"[1, 2]"#, "element 0 of the top-level array is a number; expected an object"),
        (#""hello""#, "JSON payload is a string; expected an object of signal values or an array of them"),
        ("42", "JSON payload is a number"),
        (#"{"a": 1"#, "invalid JSON at byte 7: expected ',' or '}' in object, found end of input"),
        (#"{"dev-A": [1]}"#, #"device "dev-A", element 0 is a number"#),
        (#"{"": {"a": 1}}"#, "empty device name"),
    ])
    func errors(text: String, expected: String) {
        do {
            let records = try JSONParser().parse(Self.message(text))
            Issue.record("\(text) parsed to \(records), expected an error containing \(expected)")
        } catch {
            #expect(error.code == .malformedPayload)
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func noDevice() {
        #expect {
            try JSONParser().parse(Self.message(#"{"temp": 1}"#, device: nil))
        } throws: { error in
            guard let error = error as? IoTError else { return false }
            return error.code == .malformedPayload && error.message.hasPrefix("no device: ")
        }
        // Nothing to store, nothing to attribute: not an error.
        #expect(throws: Never.self) { try JSONParser().parse(Self.message("[]", device: nil)) }
    }
}
