public import IoTCore

/// Checks a ``IoTCore/Parser`` against its contract: golden cases, every truncation of valid payloads,
/// garbage, and pathological nesting.
///
/// Each check returns the failures it found instead of asserting, so it works with any test framework:
///
/// ```swift
/// let verifier = ParserVerifier(JSONParser())
/// let valid = InboundMessage(transport: "test", deviceUID: "d-1", text: #"{"ts": 1, "temp": 21.5}"#)
/// #expect(verifier.golden(valid, expected: [DeviceRecord(deviceUID: "d-1", time: 1, values: ["temp": .number(21.5)])]).isEmpty)
/// #expect(verifier.truncations(of: valid).isEmpty)
/// #expect(verifier.garbage(count: 1_000, seed: 42, mutating: [valid]).isEmpty)
/// #expect(verifier.deepNesting().isEmpty)
/// ```
///
/// The robustness checks (truncation, garbage, nesting) accept two outcomes: records, or an
/// ``IoTCore/IoTError`` with code ``IoTCore/IoTError/Code/malformedPayload``. Any other error code is a
/// failure; a crash ends the test process, which is a failure too.
public struct ParserVerifier: Sendable {
    /// One way the parser broke its contract.
    public struct Failure: Sendable, Hashable, CustomStringConvertible {
        /// Which check found it (`golden`, `truncation`, `garbage`, `deepNesting`).
        public var check: String
        /// What went wrong, with an excerpt of the payload.
        public var description: String

        /// Creates a failure.
        public init(check: String, description: String) {
            self.check = check
            self.description = description
        }
    }

    /// A message and the records it must produce.
    public struct GoldenCase: Sendable, CustomStringConvertible {
        /// A short name for reports.
        public var name: String
        /// The input.
        public var message: InboundMessage
        /// The records the parser must return, in order.
        public var expected: [DeviceRecord]

        /// Creates a golden case.
        public init(_ name: String, message: InboundMessage, expected: [DeviceRecord]) {
            self.name = name
            self.message = message
            self.expected = expected
        }

        /// The case's name.
        public var description: String { name }
    }

    /// The parser under test.
    public let parser: any Parser
    /// The message the robustness checks put their payloads in (transport, device, `receivedAt`).
    public var template: InboundMessage

    /// Creates a verifier.
    ///
    /// `template` supplies everything but the payload for ``garbage(count:seed:mutating:)`` and
    /// ``deepNesting(depth:)``; by default it has a device and a `receivedAt`, so that failures are about
    /// the payload and not about missing context.
    public init(
        _ parser: any Parser,
        template: InboundMessage = InboundMessage(
            transport: "test", deviceUID: "verifier", payload: [], receivedAt: 1_700_000_000_000)
    ) {
        self.parser = parser
        self.template = template
    }

    // MARK: Golden

    /// Checks that `message` parses to exactly `expected`.
    public func golden(_ message: InboundMessage, expected: [DeviceRecord], name: String? = nil) -> [Failure] {
        let label = name.map { "\($0): " } ?? ""
        do {
            let records = try parser.parse(message)
            if records == expected { return [] }
            return [
                Failure(
                    check: "golden",
                    description:
                        "\(label)\(excerpt(message.payload)) parsed to \(records), expected \(expected)")
            ]
        } catch {
            return [
                Failure(
                    check: "golden",
                    description: "\(label)\(excerpt(message.payload)) threw \(error), expected \(expected)")
            ]
        }
    }

    /// Checks every golden case.
    public func golden(_ cases: [GoldenCase]) -> [Failure] {
        cases.flatMap { golden($0.message, expected: $0.expected, name: $0.name) }
    }

    /// Checks that `message` is rejected with ``IoTCore/IoTError/Code/malformedPayload``.
    public func rejects(_ message: InboundMessage) -> [Failure] {
        do {
            let records = try parser.parse(message)
            return [
                Failure(
                    check: "rejects",
                    description: "\(excerpt(message.payload)) parsed to \(records), expected malformedPayload")
            ]
        } catch  where error.code == .malformedPayload {
            return []
        } catch {
            return [
                Failure(
                    check: "rejects",
                    description: "\(excerpt(message.payload)) threw \(error), expected malformedPayload")
            ]
        }
    }

    // MARK: Robustness

    /// Parses every proper prefix of `message`'s payload (including the empty one).
    ///
    /// Each must return records or throw ``IoTCore/IoTError/Code/malformedPayload``.
    public func truncations(of message: InboundMessage) -> [Failure] {
        var failures: [Failure] = []
        for length in 0..<message.payload.count {
            var truncated = message
            truncated.payload = Array(message.payload[..<length])
            if let failure = robust(truncated, check: "truncation", note: "prefix of \(length) bytes") {
                failures.append(failure)
            }
        }
        return failures
    }

    /// Parses `count` deterministic pseudo-random payloads.
    ///
    /// Half are random bytes, drawn mostly from JSON punctuation, digits and letters so that they reach
    /// past the first byte; the other half are mutations (flipped, inserted, deleted, duplicated bytes)
    /// of the payloads in `samples`, when there are any. The same `seed` gives the same payloads.
    public func garbage(count: Int, seed: UInt64, mutating samples: [InboundMessage] = []) -> [Failure] {
        var random = SeededGenerator(seed: seed)
        var failures: [Failure] = []
        for i in 0..<count {
            var message = template
            if !samples.isEmpty && i % 2 == 1 {
                let sample = samples[Int(random.next() % UInt64(samples.count))]
                message = sample
                message.payload = mutate(sample.payload, &random)
            } else {
                message.payload = randomPayload(&random)
            }
            if let failure = robust(message, check: "garbage", note: "case \(i) of seed \(seed)") {
                failures.append(failure)
            }
        }
        return failures
    }

    /// Parses pathologically nested payloads: `[` and `{"a":` repeated `depth` times, open and closed.
    ///
    /// A recursive reader without a depth limit overflows its stack here.
    public func deepNesting(depth: Int = 100_000) -> [Failure] {
        let openArrays = [UInt8](repeating: UInt8(ascii: "["), count: depth)
        let closedArrays = openArrays + [UInt8](repeating: UInt8(ascii: "]"), count: depth)
        let openObjects = Array(#"{"a":"#.utf8).repeated(depth)
        let closedObjects = openObjects + Array("1".utf8) + [UInt8](repeating: UInt8(ascii: "}"), count: depth)
        let wrappedArray = Array(#"[{"a":"#.utf8) + openArrays
        var failures: [Failure] = []
        for (name, payload) in [
            ("open arrays", openArrays), ("closed arrays", closedArrays), ("open objects", openObjects),
            ("closed objects", closedObjects), ("arrays in an object", wrappedArray),
        ] {
            var message = template
            message.payload = payload
            if let failure = robust(message, check: "deepNesting", note: "\(name), depth \(depth)") {
                failures.append(failure)
            }
        }
        return failures
    }

    // MARK: Helpers

    private func robust(_ message: InboundMessage, check: String, note: String) -> Failure? {
        do {
            _ = try parser.parse(message)
            return nil
        } catch  where error.code == .malformedPayload {
            if error.message.isEmpty {
                return Failure(check: check, description: "\(note): \(excerpt(message.payload)) threw an empty message")
            }
            return nil
        } catch {
            return Failure(
                check: check,
                description: "\(note): \(excerpt(message.payload)) threw \(error), expected malformedPayload")
        }
    }

    private func randomPayload(_ random: inout SeededGenerator) -> [UInt8] {
        let alphabet = Array(#"{}[]:,"\ -+.0123456789eEtrufalsn"#.utf8) + Array("abuvsdt_\u{7F}".utf8)
        let length = Int(random.next() % 64)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        let fullyRandom = random.next() % 4 == 0
        for _ in 0..<length {
            let r = random.next()
            if fullyRandom || r % 8 == 0 {
                bytes.append(UInt8(truncatingIfNeeded: r >> 8))
            } else {
                bytes.append(alphabet[Int((r >> 8) % UInt64(alphabet.count))])
            }
        }
        return bytes
    }

    private func mutate(_ payload: [UInt8], _ random: inout SeededGenerator) -> [UInt8] {
        var bytes = payload
        let edits = 1 + Int(random.next() % 4)
        for _ in 0..<edits {
            let r = random.next()
            let position = bytes.isEmpty ? 0 : Int((r >> 8) % UInt64(bytes.count))
            switch r % 5 {
            case 0 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: r >> 32)
            case 1: bytes.insert(UInt8(truncatingIfNeeded: r >> 32), at: position)
            case 2 where !bytes.isEmpty: bytes.remove(at: position)
            case 3 where !bytes.isEmpty:
                let end = min(bytes.count, position + 1 + Int((r >> 40) % 8))
                bytes.insert(contentsOf: bytes[position..<end], at: position)
            default:
                let specials = Array(#"{}[]",:-0e.\"#.utf8)
                if !bytes.isEmpty { bytes[position] = specials[Int((r >> 32) % UInt64(specials.count))] }
            }
        }
        return bytes
    }

    private func excerpt(_ payload: [UInt8]) -> String {
        let shown = payload.prefix(80)
        var text = ""
        for b in shown {
            if b >= 0x20 && b < 0x7F { text.append(Character(Unicode.Scalar(b))) } else { text += "\\x\(hex(b))" }
        }
        if payload.count > shown.count { text += "… (\(payload.count) bytes)" }
        return "payload '\(text)'"
    }

    private func hex(_ b: UInt8) -> String {
        let s = String(b, radix: 16, uppercase: true)
        return s.count == 1 ? "0" + s : s
    }
}

extension Collection {
    fileprivate func repeated(_ times: Int) -> [Element] {
        var result: [Element] = []
        result.reserveCapacity(count * times)
        for _ in 0..<times { result.append(contentsOf: self) }
        return result
    }
}
