public import IoTCore
import IoTListener
public import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The raw TCP device listener, on the ``IoTCore/StreamTransport`` base class: each connection starts
/// with a handshake line, then carries messages in the configured framing, each answered with an ack
/// after its journal receipt.
///
/// The protocol, per connection:
/// 1. The device sends one handshake line: `uid:<device uid>:<username>:<password>` (as
///    go-iot-platform's TCP transport), `token:<access token>`, or, on a TLS listener that asks for client
///    certificates (``Configuration/tls``), `cert`: the device is the one its verified client certificate
///    is registered to (by fingerprint or subject). The server answers `OK <device uid>`
///    or `ERR <code> <message>` and closes. The handshake is a line in both framings.
/// 2. The device sends messages: lines, or a 4-byte big-endian length followed by that many bytes
///    (``Framing``). Each is parsed by the listener's parser and journaled.
/// 3. Every message is answered, in the same framing and in order: `OK <journal sequence>` once it is in
///    the journal, or `ERR <code> <message>` (malformed payload, an empty line, oversize frame, unknown
///    signal). A message refused for back-pressure (the store is behind, or iotd is starting) is tried again
///    while the connection is not read, for up to 30 s (``IoTCore/StreamTransport/Configuration/backpressureRetryLimit``),
///    and only then answered `ERR backpressure … retry after <ms> ms`. An error costs only that message, except a length
///    header that announces more than ``Configuration/maxFrameBytes``: it is answered
///    `ERR payload_too_large …` and the connection is closed, since skipping the bytes it announces would
///    swallow the frames that follow.
/// 4. Downlink messages (``IoTCore/DeviceSessions/send(_:to:)``) arrive as `DOWN <payload>`.
///
/// Messages of a connection are ingested one at a time. While one is being ingested, or its ack cannot be
/// written because the device does not read, the listener stops reading that connection after a few
/// chunks, so a device that sends faster than it is served is held back by TCP flow control instead of
/// being buffered in memory; other connections are unaffected.
///
/// A connection that sends nothing for ``Configuration/idleTimeout`` is closed; revoking the
/// device's credentials closes its connections at once. With ``Configuration/tls`` the listener speaks
/// TLS 1.2 or later only; a failed TLS handshake (a plain-TCP client, a refused client certificate) ends
/// that connection and is counted as rejected.
///
/// ```swift
/// let tcp = TCPTransport(configuration: .init(port: 9000), gateway: gateway, sessions: auth.sessions,
///                        parser: JSONParser(), logger: logger)
/// // printf 'uid:meter-1:meter-1:secret\n{"temp":21.5}\n' | nc 127.0.0.1 9000   →  OK meter-1 / OK 17
/// ```
public final class TCPTransport: StreamTransport, @unchecked Sendable {
    /// The listener configuration in force.
    public let tcp: Configuration
    /// Live connections, closed on revocation.
    public let sessions: DeviceSessions
    private let port = ListeningPort(component: "TCP listener")
    private let connections = Mutex<[ObjectIdentifier: NIOByteStream]>([:])

    /// Creates the listener; nothing is bound until ``run()``.
    ///
    /// - Parameters:
    ///   - gateway: checks the handshake's credential, and takes the connection's messages.
    ///   - parser: reads each frame (JSON by default).
    public init(
        configuration: Configuration = .init(), gateway: any IngestGateway,
        sessions: DeviceSessions = DeviceSessions(), parser: any Parser = JSONParser(),
        logger: Logger = Logger(label: "iot.tcp")
    ) {
        self.tcp = configuration
        self.sessions = sessions
        // Length-prefixed frames carry a 4-byte header; the base class's limit covers header and body.
        let baseLimit =
            configuration.framing == .lengthPrefixed ? configuration.maxFrameBytes + 4 : configuration.maxFrameBytes
        super.init(
            name: "tcp", identity: DeviceIdentity(tenant: TenantID(""), deviceUID: ""), parser: parser,
            configuration: StreamTransport.Configuration(maxFrameBytes: baseLimit), gateway: gateway, logger: logger)
    }

    /// A listener with a ``IoTCore/DefaultIngestGateway`` of its own over `ingestor` and `authenticator`
    /// (no credential cache).
    public convenience init(
        configuration: Configuration = .init(), ingestor: Ingestor, authenticator: any DeviceAuthenticator,
        sessions: DeviceSessions = DeviceSessions(), parser: any Parser = JSONParser(),
        logger: Logger = Logger(label: "iot.tcp")
    ) {
        self.init(
            configuration: configuration,
            gateway: DefaultIngestGateway.uncached(ingestor, authenticator: authenticator),
            sessions: sessions, parser: parser, logger: logger)
    }

    /// The port the listener is bound to; waits until ``run()`` has bound it.
    public func listeningPort() async throws -> Int {
        try await port.wait()
    }

    /// Accepts connections until graceful shutdown or cancellation; then closes the listener and every
    /// connection (a message being ingested is finished and acknowledged first).
    public override func run() async throws {
        do {
            try tcp.validate()
        } catch {
            port.stopped("its configuration is invalid: \(error.message)")
            throw error
        }
        let tlsSource: TLSContextSource?
        do {
            tlsSource = try tcp.tls.map { tls throws(IoTError) in try TLSContextSource(tls) }
        } catch {
            port.stopped("its TLS configuration is invalid: \(error.message)")
            throw error
        }
        let idle = TimeAmount.nanoseconds(tcp.idleTimeout.inNanoseconds)
        let limiter = ConnectionLimiter(limits: tcp.limits, listener: "tcp")
        let gateway = self.gateway
        let name = self.name
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.backlog, value: 256)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .bind(host: tcp.host, port: tcp.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tlsSource {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLServerHandler(context: tlsSource.context))
                            try channel.pipeline.syncOperations.addHandler(
                                TLSHandshakeObserver { error in
                                    _ = gateway.submitBlocking(
                                        [.refused(error, transport: name)], onCacheMiss: .deferToAsync)
                                }
                            )
                        }
                        // Caps, and the handshake line's deadline (not moved by each byte).
                        try channel.pipeline.syncOperations.addHandler(
                            ConnectionGuardHandler(limiter: limiter, handshakeLine: true))
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                        try channel.pipeline.syncOperations.addHandler(IdleCloseHandler())
                        // Read backpressure: at most `highWatermark` chunks wait while the connection's message is
                        // being ingested or its ack cannot be written; then the socket is not read until the
                        // backlog drains to `lowWatermark`, and TCP flow control holds the device back.
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(
                                backPressureStrategy: .init(
                                    lowWatermark: Self.readBacklogLow, highWatermark: Self.readBacklogHigh)))
                    }
                }
        } catch {
            port.stopped("binding \(tcp.host):\(tcp.port) failed: \(error)")
            throw IoTError(.unavailable, "the TCP listener cannot bind \(tcp.host):\(tcp.port): \(error)")
        }
        let bound = server.channel.localAddress?.port ?? 0
        logger.info(
            "TCP listening",
            metadata: [
                "host": "\(tcp.host)", "port": "\(bound)", "framing": "\(tcp.framing.rawValue)",
                "tls": "\(tcp.tls.map { "client certificates \($0.clientCertificates.rawValue)" } ?? "off")",
            ])
        port.bound(bound)
        defer { port.stopped("it has stopped") }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await self.handle(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
            for stream in self.connections.withLock({ Array($0.values) }) { stream.channel.close(promise: nil) }
        }
    }

    private func handle(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let address = connection.channel.remoteAddress?.ipAddress ?? ""
        do {
            try await connection.executeThenClose { inbound, outbound in
                let stream = NIOByteStream(inbound: inbound, outbound: outbound, channel: connection.channel)
                let key = ObjectIdentifier(stream)
                connections.withLock { $0[key] = stream }
                defer { _ = connections.withLock { $0.removeValue(forKey: key) } }
                guard let identity = try await handshake(stream, address: address) else { return }
                let framing = tcp.framing
                let session = sessions.register(
                    identity, transport: name, address: address,
                    send: { payload in try await stream.write(Self.frame("DOWN", payload, framing: framing)) },
                    close: { await stream.close() })
                defer { sessions.unregister(session) }
                try await serve(stream, identity: identity)
            }
        } catch {
            logger.debug("TCP connection ended", metadata: ["error": "\(error)", "peer": "\(address)"])
        }
    }

    // MARK: Handshake

    /// Reads and checks the handshake line; answers it. `nil` when the connection must end.
    private func handshake(_ stream: NIOByteStream, address: String) async throws -> DeviceIdentity? {
        var buffer: [UInt8] = []
        var line: [UInt8]?
        while line == nil {
            guard let chunk = try await stream.read() else { return nil }
            buffer.append(contentsOf: chunk)
            if let i = buffer.firstIndex(of: 0x0A) {
                line = Array(buffer[..<i])
                stream.unread(Array(buffer[(i + 1)...]))
            } else if buffer.count > tcp.maxHandshakeBytes {
                return try await refuse(
                    IoTError(.payloadTooLarge, "the handshake line is over \(tcp.maxHandshakeBytes) bytes"), on: stream)
            }
        }
        var text = String(decoding: line!, as: UTF8.self)
        if text.hasSuffix("\r") { text.removeLast() }
        let credential: DeviceCredential
        var claimedUID: String?
        if text.hasPrefix("uid:") {
            let parts = text.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, !parts[1].isEmpty else {
                return try await refuse(Self.handshakeFormatError, on: stream)
            }
            claimedUID = String(parts[1])
            credential = .usernamePassword(username: String(parts[2]), password: String(parts[3]))
        } else if text.hasPrefix("token:") {
            credential = .token(String(text.dropFirst(6)))
        } else if text == "cert" {
            guard let tls = tcp.tls, tls.clientCertificates != .none else {
                return try await refuse(
                    IoTError(
                        .unauthorized,
                        "this listener does not ask for client certificates; send 'token:<access token>' or 'uid:<device uid>:<username>:<password>'"
                    ), on: stream)
            }
            guard let peer = await PeerCertificate.of(stream.channel) else {
                return try await refuse(
                    IoTError(
                        .unauthorized,
                        "this connection presented no client certificate; connect with the device's certificate, or send 'token:<access token>'"
                    ), on: stream)
            }
            credential = peer.credential
        } else {
            return try await refuse(Self.handshakeFormatError, on: stream)
        }
        let identity: DeviceIdentity
        switch await gateway.authenticate(credential, source: AuthenticationSource(transport: name, address: address)) {
        case .success(let device): identity = device
        case .failure(let error): return try await answer(error, on: stream)  // the gateway counted it
        }
        if let claimedUID, claimedUID != identity.deviceUID {
            return try await refuse(
                IoTError(.forbidden, "these credentials belong to another device; send uid:<that device's uid>:…"),
                on: stream)
        }
        try await stream.write(Array("OK \(identity.deviceUID)\n".utf8))
        return identity
    }

    /// Chunks read ahead per connection: reading pauses above the high mark and resumes at the low mark.
    static let readBacklogLow = 1
    static let readBacklogHigh = 4

    private static let handshakeFormatError = IoTError(
        .malformedPayload,
        "the first line must be 'uid:<device uid>:<username>:<password>', 'token:<access token>' or (TLS with a client certificate) 'cert'"
    )

    private func refuse(_ error: IoTError, on stream: NIOByteStream) async throws -> DeviceIdentity? {
        _ = await gateway.submit(.refused(error, transport: name))
        return try await answer(error, on: stream)
    }

    /// Writes the refusal and closes the connection.
    private func answer(_ error: IoTError, on stream: NIOByteStream) async throws -> DeviceIdentity? {
        try? await stream.write(Array("ERR \(error.code.name) \(Self.oneLine(error.message))\n".utf8))
        await stream.close()
        return nil
    }

    // MARK: Framing

    /// Lines (an empty line is a frame too, answered `ERR malformed_payload` and counted: a device that
    /// sends one learns of it), or length-prefixed frames.
    public override func nextFrame(from buffer: inout [UInt8]) throws(IoTError) -> [UInt8]? {
        guard tcp.framing == .lengthPrefixed else {
            guard let i = buffer.firstIndex(of: 0x0A) else { return nil }
            var frame = Array(buffer[..<i])
            buffer.removeFirst(i + 1)
            if frame.last == 0x0D { frame.removeLast() }
            return frame
        }
        guard let length = Self.declaredLength(buffer), length <= tcp.maxFrameBytes, buffer.count >= 4 + length else {
            return nil
        }
        let frame = Array(buffer[4..<(4 + length)])
        buffer.removeFirst(4 + length)
        return frame
    }

    public override func oversizeFrameLength(in buffer: [UInt8]) -> Int? {
        guard tcp.framing == .lengthPrefixed, let length = Self.declaredLength(buffer), length > tcp.maxFrameBytes
        else { return nil }
        return 4 + length
    }

    public override func acknowledgement(for result: Result<Receipt, IoTError>) -> [UInt8]? {
        switch result {
        case .success(let receipt):
            return Self.frame("OK", Array("\(receipt.sequence)".utf8), framing: tcp.framing)
        case .failure(let error):
            var message = error.message
            if let wait = error.retryAfterMillis { message += " (retry after \(wait) ms)" }
            return Self.frame("ERR", Array("\(error.code.name) \(Self.oneLine(message))".utf8), framing: tcp.framing)
        }
    }

    static func declaredLength(_ buffer: [UInt8]) -> Int? {
        guard buffer.count >= 4 else { return nil }
        return Int(buffer[0]) << 24 | Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])
    }

    /// `<verb> <body>` in the framing: a line (newlines in the body become spaces) or a length-prefixed frame.
    static func frame(_ verb: String, _ body: [UInt8], framing: Framing) -> [UInt8] {
        var bytes = Array(verb.utf8) + [0x20]
        switch framing {
        case .lines:
            bytes += body.map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 }
            bytes.append(0x0A)
            return bytes
        case .lengthPrefixed:
            bytes += body
            let n = bytes.count
            return [
                UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16),
                UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n),
            ] + bytes
        }
    }

    static func oneLine(_ s: String) -> String {
        String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
