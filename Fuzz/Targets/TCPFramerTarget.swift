import IoTCore
import IoTProtocols
import IoTTesting

extension FuzzTarget {
    /// The stream framers. The bytes are a device's stream after its handshake; each framer cuts them into
    /// frames as ``IoTCore/StreamTransport/serve(_:identity:)`` does (the same calls in the same order: skip an
    /// oversize frame, ``IoTCore/StreamTransport/nextFrame(from:)``,
    /// ``IoTCore/StreamTransport/oversizeFrameLength(in:)``, the size checks, ``IoTCore/StreamTransport/decode(_:identity:)``
    /// and ``IoTCore/StreamTransport/acknowledgement(for:)``), with the stream arriving whole (inputs of even
    /// length) or in 3-byte chunks (odd length). Nothing is ingested. Framers: the base class's lines, ``IoTHTTP/TCPTransport``'s lines
    /// and its length-prefixed frames, all with a 32-byte limit so that short inputs reach the oversize paths.
    public static func fuzzTCPFramer(_ data: [UInt8]) {
        for framer in Framers.shared.all {
            var driver = FramerDriver(transport: framer)
            driver.feed(data, chunk: data.count % 2 == 0 ? data.count : 3)
        }
    }
}

/// The framers under test, built once: a transport needs an ingestor, which is never called here.
private final class Framers: Sendable {
    static let shared = Framers()

    let all: [StreamTransport]

    private init() {
        let ingestor = Ingestor(
            journal: InMemoryJournal(), pointStore: InMemoryPointStore(), registry: InMemoryRegistryStore())
        let identity = DeviceIdentity(tenant: TenantID("fuzz"), deviceUID: "dev-1")
        let base = StreamTransport(
            name: "stream", identity: identity, parser: JSONParser(), configuration: .init(maxFrameBytes: 32),
            ingestor: ingestor)
        let lines = TCPTransport(
            configuration: .init(port: 0, framing: .lines, maxFrameBytes: 32), ingestor: ingestor,
            authenticator: RefusingAuthenticator())
        let lengthPrefixed = TCPTransport(
            configuration: .init(port: 0, framing: .lengthPrefixed, maxFrameBytes: 32), ingestor: ingestor,
            authenticator: RefusingAuthenticator())
        all = [base, lines, lengthPrefixed]
    }
}

/// An authenticator that knows no device (the framers never authenticate).
private struct RefusingAuthenticator: DeviceAuthenticator {
    func authenticate(_ credential: DeviceCredential) async throws(IoTError) -> DeviceIdentity {
        throw IoTError(.unauthorized, "no device")
    }
}

/// The framing half of ``IoTCore/StreamTransport/serve(_:identity:)``, synchronous and without a stream.
private struct FramerDriver {
    let transport: StreamTransport
    var buffer: [UInt8] = []
    var skipping = false

    init(transport: StreamTransport) {
        self.transport = transport
    }

    mutating func feed(_ stream: [UInt8], chunk: Int) {
        var offset = 0
        while offset < stream.count {
            let end = min(stream.count, offset + max(1, chunk))
            buffer.append(contentsOf: stream[offset..<end])
            offset = end
            guard cut() else { return }
        }
    }

    /// Cuts every complete frame out of the buffer; `false` when the connection would be closed.
    private mutating func cut() -> Bool {
        let limit = transport.configuration.maxFrameBytes
        while true {
            if skipping {
                guard let end = transport.skipOversizeFrame(in: buffer) else {
                    buffer.removeAll(keepingCapacity: true)
                    return true
                }
                precondition(
                    end > 0 && end <= buffer.count, "skipOversizeFrame returned \(end) for \(buffer.count) bytes")
                buffer.removeFirst(end)
                skipping = false
            }
            let before = buffer.count
            let frame: [UInt8]?
            do {
                frame = try transport.nextFrame(from: &buffer)
            } catch {
                acknowledge(.failure(error))
                buffer.removeAll(keepingCapacity: true)
                return true
            }
            guard let frame else {
                if let total = transport.oversizeFrameLength(in: buffer) {
                    precondition(total > limit, "oversizeFrameLength \(total) is within the limit \(limit)")
                    acknowledge(.failure(IoTError(.payloadTooLarge, "frame of \(total) bytes")))
                    return false
                }
                if buffer.count > limit {
                    acknowledge(.failure(IoTError(.payloadTooLarge, "frame exceeds \(limit) bytes")))
                    skipping = true
                    continue
                }
                return true
            }
            precondition(buffer.count + frame.count < before, "nextFrame returned a frame without consuming it")
            if frame.isEmpty {
                acknowledge(.failure(IoTError.malformed("an empty message")))
                continue
            }
            if frame.count > limit {
                acknowledge(.failure(IoTError(.payloadTooLarge, "frame of \(frame.count) bytes")))
                continue
            }
            do {
                let message = try transport.decode(frame, identity: transport.identity)
                acknowledge(.failure(IoTError.malformed(String(decoding: message.payload, as: UTF8.self))))
                acknowledge(.success(Receipt(sequence: UInt64(frame.count), records: 1, points: frame.count)))
            } catch {
                acknowledge(.failure(error))
            }
        }
    }

    private func acknowledge(_ result: Result<Receipt, IoTError>) {
        _ = transport.acknowledgement(for: result)
    }
}
