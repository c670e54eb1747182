public import IoTCore
public import Logging

/// A weighing scale on a byte stream (a serial line, a socket): it writes one reading per line,
/// `W,<weight>,<unit>` (`W,12.5,kg`), and reads back `OK` or `ERR <reason>` for each.
///
/// The base class does the rest: line framing, oversize lines, the journal receipt before `OK`, retrying
/// while the pipeline is starting or behind, reconnecting, and stopping on a graceful shutdown.
public final class ScaleTransport: StreamTransport, @unchecked Sendable {
    private let open: @Sendable () async throws -> any ByteStream

    /// A scale that is `device`, reached through `open` (for example a `FileDescriptorStream` of a serial line).
    public init(
        device: DeviceIdentity, ingestor: Ingestor, logger: Logger = Logger(label: "scale"),
        open: @escaping @Sendable () async throws -> any ByteStream
    ) {
        self.open = open
        super.init(
            name: "scale", identity: device, parser: ScaleParser(), configuration: .init(maxFrameBytes: 64),
            ingestor: ingestor, logger: logger)
    }

    override public func connect() async throws -> any ByteStream { try await open() }

    override public func acknowledgement(for result: Result<Receipt, IoTError>) -> [UInt8]? {
        switch result {
        case .success: Array("OK\n".utf8)
        case .failure(let error): Array("ERR \(error.code.name)\n".utf8)
        }
    }
}

/// Reads `W,<weight>,<unit>` into the signal `weight` (kilograms; grams are converted).
public struct ScaleParser: Parser {
    public var name: String { "scale" }

    public init() {}

    public func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
        let fields = String(decoding: message.payload, as: UTF8.self).split(separator: ",")
        guard fields.count == 3, fields[0] == "W", let value = Double(fields[1]), value.isFinite else {
            throw IoTError.malformed("expected W,<weight>,<unit>, e.g. W,12.5,kg")
        }
        let kilograms: Double
        switch fields[2] {
        case "kg": kilograms = value
        case "g": kilograms = value / 1000
        default: throw IoTError.malformed("unit \(fields[2]) is not kg or g")
        }
        return [DeviceRecord(deviceUID: message.deviceUID ?? "", values: ["weight": .number(kilograms)])]
    }
}
