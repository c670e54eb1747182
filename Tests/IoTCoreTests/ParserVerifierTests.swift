import IoTCore
import IoTTesting
import Testing

@Suite struct ParserVerifierTests {
    static let parsers: [any Parser] = [JSONParser(), SenMLParser()]

    static func samples(for parser: any Parser) -> [InboundMessage] {
        switch parser.name {
        case "json": JSONParserTests.goldenCases.map(\.message)
        default: (SenMLParserTests.rfcCases + SenMLParserTests.mappingCases).map(\.message)
        }
    }

    @Test(arguments: ["json", "senml"])
    func truncations(parserName: String) {
        let parser = Self.parsers.first { $0.name == parserName }!
        let verifier = ParserVerifier(parser)
        for sample in Self.samples(for: parser) {
            let failures = verifier.truncations(of: sample)
            #expect(failures.isEmpty, "\(failures.prefix(3))")
        }
    }

    @Test(arguments: ["json", "senml"], [1, 2, 3])
    func garbage(parserName: String, seed: UInt64) {
        let parser = Self.parsers.first { $0.name == parserName }!
        let failures = ParserVerifier(parser).garbage(count: 2_000, seed: seed, mutating: Self.samples(for: parser))
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    @Test(arguments: ["json", "senml"])
    func deepNesting(parserName: String) {
        let parser = Self.parsers.first { $0.name == parserName }!
        let failures = ParserVerifier(parser).deepNesting()
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func rejectsMalformed() {
        let verifier = ParserVerifier(JSONParser())
        #expect(verifier.rejects(InboundMessage(transport: "t", deviceUID: "d", text: "{")).isEmpty)
        #expect(verifier.rejects(InboundMessage(transport: "t", deviceUID: "d", text: "{}")).count == 1)
    }

    // MARK: The verifier catches broken parsers

    /// Throws the wrong code for anything but `{}`.
    struct WrongCodeParser: Parser {
        var name: String { "wrong-code" }
        func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
            if message.payload == Array("{}".utf8) { return [] }
            throw IoTError(.invalidValue, "nope")
        }
    }

    @Test func catchesWrongErrorCodes() {
        let verifier = ParserVerifier(WrongCodeParser())
        let valid = InboundMessage(transport: "t", deviceUID: "d", text: #"{"a":1}"#)
        #expect(verifier.truncations(of: valid).count == valid.payload.count)
        #expect(verifier.garbage(count: 10, seed: 7).count == 10)
        #expect(verifier.deepNesting(depth: 10).count == 5)
        let failures = verifier.golden(valid, expected: [])
        #expect(failures.count == 1)
        #expect(failures.first?.check == "golden")
        #expect(failures.first?.description.contains("invalid_value: nope") == true)
    }

    @Test func catchesGoldenMismatch() {
        let verifier = ParserVerifier(JSONParser())
        let message = InboundMessage(transport: "t", deviceUID: "d", text: #"{"a":1}"#)
        #expect(verifier.golden(message, expected: [DeviceRecord(deviceUID: "d", values: ["a": .number(1)])]).isEmpty)
        let failures = verifier.golden(message, expected: [DeviceRecord(deviceUID: "d", values: ["a": .number(2)])])
        #expect(failures.count == 1)
    }

    @Test func garbageIsDeterministic() {
        /// Records every payload it is given.
        final class Recorder: Parser, @unchecked Sendable {
            // Single-threaded use inside this test only.
            var payloads: [[UInt8]] = []
            var name: String { "recorder" }
            func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
                payloads.append(message.payload)
                return []
            }
        }
        let samples = [InboundMessage(transport: "t", text: #"{"a":[1,2,3]}"#)]
        let first = Recorder()
        let second = Recorder()
        _ = ParserVerifier(first).garbage(count: 50, seed: 99, mutating: samples)
        _ = ParserVerifier(second).garbage(count: 50, seed: 99, mutating: samples)
        #expect(first.payloads == second.payloads)
        #expect(first.payloads.count == 50)
        #expect(Set(first.payloads).count > 40)
    }
}
