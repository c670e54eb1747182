public import IoTCore

extension CoAPTransport {
    /// Where the CoAP listener binds and what it accepts.
    ///
    /// ```swift
    /// var configuration = CoAPTransport.Configuration()
    /// configuration.host = "0.0.0.0"
    /// configuration.dtls = .init(port: 5684, keys: ["gateway-1": "a long random secret"])
    /// ```
    public struct Configuration: Sendable {
        /// The address to bind (IPv4). Default `"127.0.0.1"` (loopback only); `"0.0.0.0"` for every interface.
        public var host: String
        /// The UDP port of plain CoAP. Default `5683`; `0` lets the kernel pick a free port (see
        /// ``CoAPTransport/listeningPort()``); `nil` serves DTLS only.
        public var port: Int?
        /// DTLS with pre-shared keys (`coaps://`), or `nil` (the default) for none.
        public var dtls: DTLS?
        /// The largest request body accepted, in bytes, after block-wise (Block1) reassembly; larger requests
        /// get 4.13. Default 64 KiB.
        public var maxBodyBytes: Int
        /// Requests handed to the ingestor and not yet answered, at most; past it a request gets 5.03 with
        /// Max-Age. Default 4 096.
        public var maxPendingRequests: Int
        /// How long ``CoAPTransport/run()`` waits on shutdown for answers to requests it has accepted.
        /// Default 2 s.
        public var shutdownGrace: Duration

        /// DTLS with pre-shared keys: the server accepts a handshake whose PSK identity is a key of
        /// ``keys`` and whose key matches. The device still names its token in the URI.
        ///
        /// A refused handshake (an unknown identity, a wrong key) is counted as a rejected message of
        /// transport `coap` with reason `unauthorized`, as the TLS listeners count theirs. A wrong key is only
        /// known when the handshake times out (DTLS drops what it cannot decrypt): half a minute to two minutes later.
        public struct DTLS: Sendable {
            /// The UDP port of `coaps://`. Default `5684`; `0` for any free port (see
            /// ``CoAPTransport/dtlsListeningPort()``).
            public var port: Int
            /// PSK identity → key. Must not be empty.
            public var keys: [String: String]
            /// The identity hint sent to clients. Default `"iot"`.
            public var hint: String

            /// Creates a DTLS configuration.
            public init(port: Int = 5684, keys: [String: String], hint: String = "iot") {
                self.port = port
                self.keys = keys
                self.hint = hint
            }
        }

        /// Creates a configuration; every argument has the default documented on its property.
        public init(
            host: String = "127.0.0.1",
            port: Int? = 5683,
            dtls: DTLS? = nil,
            maxBodyBytes: Int = 64 * 1024,
            maxPendingRequests: Int = 4_096,
            shutdownGrace: Duration = .seconds(2)
        ) {
            self.host = host
            self.port = port
            self.dtls = dtls
            self.maxBodyBytes = maxBodyBytes
            self.maxPendingRequests = maxPendingRequests
            self.shutdownGrace = shutdownGrace
        }

        /// Checks the configuration; ``CoAPTransport/run()`` calls it before binding.
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` saying what to change.
        public func validate() throws(IoTError) {
            if let port, !(0...65_535).contains(port) {
                throw IoTError(
                    .invalidArgument, "CoAP port \(port) is out of range; use 1–65535, or 0 for any free port")
            }
            if port == nil && dtls == nil {
                throw IoTError(.invalidArgument, "CoAP has neither a port nor DTLS; set coap.port, coap.dtls or both")
            }
            if let dtls {
                guard (0...65_535).contains(dtls.port) else {
                    throw IoTError(
                        .invalidArgument,
                        "CoAP DTLS port \(dtls.port) is out of range; use 1–65535, or 0 for any free port")
                }
                guard !dtls.keys.isEmpty, dtls.keys.allSatisfy({ !$0.key.isEmpty && !$0.value.isEmpty }) else {
                    throw IoTError(
                        .invalidArgument, "CoAP DTLS needs at least one PSK identity with a non-empty key (dtls.keys)")
                }
                if port != nil, port == dtls.port, dtls.port != 0 {
                    throw IoTError(
                        .invalidArgument, "CoAP and CoAP DTLS cannot share port \(dtls.port); use 5683 and 5684")
                }
            }
            try IoTLimits.checkSetting(maxBodyBytes, "maxBodyBytes", in: 1...(1 << 30), unit: "bytes")
            guard maxPendingRequests > 0 else {
                throw IoTError(.invalidArgument, "CoAP maxPendingRequests must be positive, e.g. 4096")
            }
        }
    }
}

extension CoAPTransport.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case host, port, dtls, maxBodyBytes, maxPendingRequests }

    /// Reads the listener's settings (`coap:` in iotd.yaml); a missing key keeps its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            host: try c.decode(.host, or: d.host), port: try c.decodeIfPresent(Int.self, forKey: .port) ?? d.port,
            dtls: try c.decodeIfPresent(DTLS.self, forKey: .dtls),
            maxBodyBytes: try c.decode(.maxBodyBytes, or: d.maxBodyBytes),
            maxPendingRequests: try c.decode(.maxPendingRequests, or: d.maxPendingRequests))
    }
}

extension CoAPTransport.Configuration.DTLS: Decodable {
    private enum CodingKeys: String, CodingKey { case port, keys, hint }

    /// Reads `keys` (PSK identity → key, required), `port` (default 5684) and `hint` (default `iot`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            port: try c.decode(.port, or: 5684), keys: try c.decode([String: String].self, forKey: .keys),
            hint: try c.decode(.hint, or: "iot"))
    }
}
