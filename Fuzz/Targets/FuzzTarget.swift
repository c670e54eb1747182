/// The libFuzzer targets of the package: each feeds arbitrary bytes to one parser or decoder that reads
/// untrusted input, and must return for every input (errors the code under test throws are expected and
/// dropped; a trap, an overflow or a memory error is a bug).
///
/// `scripts/fuzz.sh TARGET` runs one under libFuzzer with AddressSanitizer; `FuzzReplayTests` replays the
/// committed corpora (`Fuzz/Corpus/<rawValue>`) and crash reproducers (`Fuzz/Crashes/<rawValue>`) in a
/// normal `swift test`.
///
/// ```swift
/// FuzzTarget.cron.run(Array("*/5 * * * *".utf8))
/// ```
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// ``IoTCore/JSONParser`` in its layouts, with and without the message's device.
    case json
    /// ``IoTCore/SenMLParser`` with a receive time (relative times) and without one.
    case senml
    /// The stream framers: ``IoTCore/StreamTransport``'s lines and ``IoTHTTP/TCPTransport``'s lines and
    /// length-prefixed frames, with their oversize handling and acks.
    case tcpFramer = "tcp-framer"
    /// A CoAP request datagram as the CoAP listener reads it: libcoap's PDU parse, then the listener's Uri-Path,
    /// Uri-Query, Content-Format and payload reading, telemetry route and error reply.
    case coap
    /// ``IoTModbus/ModbusCodec`` decoding and encoding over every data type and byte order.
    case modbus
    /// ``IoTRules/CronExpression`` parsing and its next fire times in UTC, a fixed offset and a DST zone.
    case cron
    /// ``IoTRules/Template`` (`${name}`) parsing and rendering, and ``IoTRules/NotificationTemplate``.
    case template
    /// The library types iotd's configuration file is made of, decoded from YAML (and JSON) and validated.
    case configuration

    /// Feeds `data` to the target.
    public func run(_ data: [UInt8]) {
        switch self {
        case .json: Self.fuzzJSON(data)
        case .senml: Self.fuzzSenML(data)
        case .tcpFramer: Self.fuzzTCPFramer(data)
        case .coap: Self.fuzzCoAP(data)
        case .modbus: Self.fuzzModbus(data)
        case .cron: Self.fuzzCron(data)
        case .template: Self.fuzzTemplate(data)
        case .configuration: Self.fuzzConfiguration(data)
        }
    }

    /// Feeds the bytes of `buffer` to the target (the form libFuzzer's `LLVMFuzzerTestOneInput` has).
    public func run(_ buffer: UnsafeRawBufferPointer) {
        run(Array(buffer))
    }
}
