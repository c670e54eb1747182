public import IoTCore
public import IoTListener

extension TCPTransport {
    /// How messages are cut out of the byte stream.
    public enum Framing: String, Sendable, CaseIterable {
        /// One message per line (`\n`, an optional `\r` before it is dropped; an empty line is answered with an error).
        case lines
        /// A 4-byte big-endian length, then that many bytes.
        case lengthPrefixed = "length-prefixed"
    }

    /// Where the TCP listener binds and what it accepts.
    ///
    /// ```swift
    /// var configuration = TCPTransport.Configuration()
    /// configuration.port = 9000
    /// configuration.framing = .lengthPrefixed
    /// ```
    public struct Configuration: Sendable {
        /// The address to bind. Default `"127.0.0.1"`.
        public var host: String
        /// The port. Default `9000`; `0` picks a free one (see ``TCPTransport/listeningPort()``).
        public var port: Int
        /// The framing of messages (and of acks). Default ``Framing/lines``.
        public var framing: Framing
        /// The largest message, in bytes; a larger one is answered with an error and counted, then skipped
        /// (a line) or the connection is closed (a length header that announces more). Default 65 536.
        public var maxFrameBytes: Int
        /// A connection that sends nothing for this long is closed (also before its handshake).
        /// Default 120 000 ms.
        public var idleTimeout: Duration
        /// The longest handshake line, in bytes. Default 1 024.
        public var maxHandshakeBytes: Int
        /// TLS on the listener, or `nil` (the default) for plain TCP. With client certificates, a device
        /// may send the handshake line `cert` to be identified by its certificate.
        public var tls: ListenerTLS?
        /// The handshake line (and a TLS handshake before it) must be complete within this long of the
        /// connection's start, however slowly its bytes arrive. Default 10 000 ms.
        public var handshakeTimeout: Duration
        /// Connections open at once, at most; one more is closed as soon as it is accepted. Default 10 000.
        public var maxConnections: Int
        /// Connections open at once from one client address, at most. Default 1 000.
        public var maxConnectionsPerAddress: Int

        /// The listener's limits in the form the connection guard takes.
        var limits: ListenerLimits {
            ListenerLimits(
                idleTimeout: idleTimeout, headerTimeout: handshakeTimeout,
                maxConnections: maxConnections, maxConnectionsPerAddress: maxConnectionsPerAddress)
        }

        /// Creates a configuration; every argument has the default documented on its property.
        public init(
            host: String = "127.0.0.1", port: Int = 9000, framing: Framing = .lines, maxFrameBytes: Int = 65_536,
            idleTimeout: Duration = .seconds(120), maxHandshakeBytes: Int = 1_024, tls: ListenerTLS? = nil,
            handshakeTimeout: Duration = .seconds(10), maxConnections: Int = 10_000,
            maxConnectionsPerAddress: Int = 1_000
        ) {
            self.tls = tls
            self.handshakeTimeout = handshakeTimeout
            self.maxConnections = maxConnections
            self.maxConnectionsPerAddress = maxConnectionsPerAddress
            self.host = host
            self.port = port
            self.framing = framing
            self.maxFrameBytes = maxFrameBytes
            self.idleTimeout = idleTimeout
            self.maxHandshakeBytes = maxHandshakeBytes
        }

        /// Checks the configuration; ``TCPTransport/run()`` calls it before binding.
        public func validate() throws(IoTError) {
            guard (0...65_535).contains(port) else {
                throw IoTError(
                    .invalidArgument, "TCP port \(port) is out of range; use 1–65535, or 0 for any free port")
            }
            guard maxFrameBytes > 0, maxFrameBytes <= Int(Int32.max) else {
                throw IoTError(.invalidArgument, "TCP maxFrameBytes must be positive, e.g. 65536")
            }
            guard idleTimeout > .zero else {
                throw IoTError(.invalidArgument, "TCP idleTimeoutMillis must be positive, e.g. 120000")
            }
            guard maxHandshakeBytes >= 16 else {
                throw IoTError(.invalidArgument, "TCP maxHandshakeBytes must be at least 16, e.g. 1024")
            }
            do { try limits.validate() } catch { throw IoTError(.invalidArgument, "TCP \(error.message)") }
        }
    }
}

extension TCPTransport.Framing: Decodable {
    /// Reads `lines` or `length-prefixed`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let framing = Self(rawValue: text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "'\(text)' is not lines or length-prefixed")
        }
        self = framing
    }
}

extension TCPTransport.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey {
        case host, port, framing, maxFrameBytes, idleTimeoutMillis, maxHandshakeBytes, tls, handshakeTimeoutMillis
        case maxConnections, maxConnectionsPerAddress
    }

    /// Reads one listener's settings (an entry of `tcp:` in iotd.yaml): `port` is required, a missing key
    /// otherwise keeps its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            host: try c.decode(.host, or: d.host), port: try c.decode(Int.self, forKey: .port),
            framing: try c.decode(.framing, or: d.framing),
            maxFrameBytes: try c.decode(.maxFrameBytes, or: d.maxFrameBytes),
            idleTimeout: try c.decodeMillis(.idleTimeoutMillis, or: d.idleTimeout),
            maxHandshakeBytes: try c.decode(.maxHandshakeBytes, or: d.maxHandshakeBytes),
            tls: try c.decodeIfPresent(ListenerTLS.self, forKey: .tls),
            handshakeTimeout: try c.decodeMillis(.handshakeTimeoutMillis, or: d.handshakeTimeout),
            maxConnections: try c.decode(.maxConnections, or: d.maxConnections),
            maxConnectionsPerAddress: try c.decode(.maxConnectionsPerAddress, or: d.maxConnectionsPerAddress))
    }
}
