public import IoTCore

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
        /// A connection that sends nothing for this long, in ms, is closed (also before its handshake).
        /// Default 120 000.
        public var idleTimeoutMillis: Int64
        /// The longest handshake line, in bytes. Default 1 024.
        public var maxHandshakeBytes: Int
        /// TLS on the listener, or `nil` (the default) for plain TCP. With client certificates, a device
        /// may send the handshake line `cert` to be identified by its certificate.
        public var tls: ListenerTLS?

        /// Creates a configuration; every argument has the default documented on its property.
        public init(
            host: String = "127.0.0.1", port: Int = 9000, framing: Framing = .lines, maxFrameBytes: Int = 65_536,
            idleTimeoutMillis: Int64 = 120_000, maxHandshakeBytes: Int = 1_024, tls: ListenerTLS? = nil
        ) {
            self.tls = tls
            self.host = host
            self.port = port
            self.framing = framing
            self.maxFrameBytes = maxFrameBytes
            self.idleTimeoutMillis = idleTimeoutMillis
            self.maxHandshakeBytes = maxHandshakeBytes
        }

        /// Checks the configuration; ``TCPTransport/run()`` calls it before binding.
        public func validate() throws(IoTError) {
            guard (0...65_535).contains(port) else {
                throw IoTError(.invalidArgument, "TCP port \(port) is out of range; use 1–65535, or 0 for any free port")
            }
            guard maxFrameBytes > 0, maxFrameBytes <= Int(Int32.max) else {
                throw IoTError(.invalidArgument, "TCP maxFrameBytes must be positive, e.g. 65536")
            }
            guard idleTimeoutMillis > 0 else {
                throw IoTError(.invalidArgument, "TCP idleTimeoutMillis must be positive, e.g. 120000")
            }
            guard maxHandshakeBytes >= 16 else {
                throw IoTError(.invalidArgument, "TCP maxHandshakeBytes must be at least 16, e.g. 1024")
            }
        }
    }
}
