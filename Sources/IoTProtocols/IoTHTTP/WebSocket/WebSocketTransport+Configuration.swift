public import IoTCore
public import IoTListener

extension WebSocketTransport {
    /// Where the WebSocket device listener binds and how it treats connections.
    ///
    /// ```swift
    /// var configuration = WebSocketTransport.Configuration()
    /// configuration.port = 8083
    /// configuration.pingIntervalMillis = 15_000
    /// ```
    public struct Configuration: Sendable {
        /// The address to bind. Default `"127.0.0.1"`.
        public var host: String
        /// The port. Default `8083`; `0` picks a free one (see ``WebSocketTransport/listeningPort()``).
        public var port: Int
        /// The path devices connect to. Default `"/api/v1/devices/ws"`.
        public var path: String
        /// The largest message, in bytes: a larger one (in one frame or many) is answered with an error
        /// frame, counted and skipped, and the connection carries on. A single frame over four times this
        /// is refused by the WebSocket layer itself, which closes the connection with 1009 (message too
        /// big); that is counted too. Default 65 536.
        public var maxMessageBytes: Int
        /// The server pings every this many ms; a peer that has not answered the previous ping by then is
        /// closed. Default 30 000 ms.
        public var pingInterval: Duration
        /// A connection that sends no message for this long is closed with 1001 (going away).
        /// Pongs do not count as messages. Default 120 000 ms.
        public var idleTimeout: Duration
        /// TLS on the listener (`wss://`), or `nil` (the default) for plain WebSocket. With client
        /// certificates, an upgrade without a token or password is authenticated by the connection's
        /// verified client certificate.
        public var tls: ListenerTLS?
        /// Before the upgrade: the request head deadline, the idle timeout of a plain HTTP connection, and the
        /// connection caps (``ListenerLimits``; its defaults). After it, ``idleTimeout`` and the pings.
        public var limits: ListenerLimits

        /// Creates a configuration; every argument has the default documented on its property.
        public init(
            host: String = "127.0.0.1", port: Int = 8083, path: String = "/api/v1/devices/ws",
            maxMessageBytes: Int = 65_536, pingInterval: Duration = .seconds(30), idleTimeout: Duration = .seconds(120),
            tls: ListenerTLS? = nil, limits: ListenerLimits = .init()
        ) {
            self.tls = tls
            self.limits = limits
            self.host = host
            self.port = port
            self.path = path
            self.maxMessageBytes = maxMessageBytes
            self.pingInterval = pingInterval
            self.idleTimeout = idleTimeout
        }

        /// Checks the configuration; ``WebSocketTransport/run()`` calls it before binding.
        public func validate() throws(IoTError) {
            guard (0...65_535).contains(port) else {
                throw IoTError(
                    .invalidArgument, "WebSocket port \(port) is out of range; use 1–65535, or 0 for any free port")
            }
            guard path.hasPrefix("/") else {
                throw IoTError(.invalidArgument, "WebSocket path must start with '/', e.g. /api/v1/devices/ws")
            }
            guard maxMessageBytes > 0, maxMessageBytes <= 64 << 20 else {
                throw IoTError(.invalidArgument, "WebSocket maxMessageBytes must be 1 … 67108864, e.g. 65536")
            }
            do { try limits.validate() } catch {
                throw IoTError(.invalidArgument, "WebSocket limits: \(error.message)")
            }
            guard pingInterval > .zero, idleTimeout > .zero else {
                throw IoTError(.invalidArgument, "WebSocket pingIntervalMillis and idleTimeoutMillis must be positive")
            }
        }
    }
}

extension WebSocketTransport.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey {
        case host, port, path, maxMessageBytes, pingIntervalMillis, idleTimeoutMillis, tls, limits
    }

    /// Reads the listener's settings (`websocket:` in iotd.yaml); a missing key keeps its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            host: try c.decode(.host, or: d.host), port: try c.decode(.port, or: d.port),
            path: try c.decode(.path, or: d.path),
            maxMessageBytes: try c.decode(.maxMessageBytes, or: d.maxMessageBytes),
            pingInterval: try c.decodeMillis(.pingIntervalMillis, or: d.pingInterval),
            idleTimeout: try c.decodeMillis(.idleTimeoutMillis, or: d.idleTimeout),
            tls: try c.decodeIfPresent(ListenerTLS.self, forKey: .tls), limits: try c.decode(.limits, or: d.limits))
    }
}
