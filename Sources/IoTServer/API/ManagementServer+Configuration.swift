public import IoTCore
public import IoTListener

extension ManagementServer {
    /// Where the management listener binds and how it is protected.
    ///
    /// ```swift
    /// var configuration = ManagementServer.Configuration()
    /// configuration.adminAPIKey = environment["IOT_ADMIN_KEY"]
    /// ```
    public struct Configuration: Sendable {
        /// The address to bind. Default `"127.0.0.1"` (loopback only).
        public var host: String
        /// The TCP port. Default `8081`; `0` lets the kernel pick a free port (see
        /// ``ManagementServer/listeningPort()``).
        public var port: Int
        /// The key every `/api` request must present, as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
        /// Default `nil`: there is no default password, so every `/api` request gets 401 until one is
        /// configured. `/metrics`, `/healthz`, `/readyz` and `/openapi.yaml` need no key.
        public var adminAPIKey: String?
        /// Points one series query or export returns at most, raw or as buckets. Default 1 000 000.
        public var maxExportPoints: Int
        /// The largest request body accepted, in bytes. Default 1 MiB.
        public var maxBodyBytes: Int
        /// The key an MQTT broker presents to the EMQX auth endpoints (`/broker/v1/emqx/…`), as
        /// `Authorization: Bearer <key>` or `X-API-Key: <key>`. Default `nil`: every such request gets 401.
        /// Keep it apart from ``adminAPIKey``, so that the broker cannot manage the platform.
        public var brokerAuthKey: String?
        /// TLS on the listener (HTTPS, and `wss://` for the live feed), or `nil` (the default) for plain HTTP;
        /// the same block as the device listeners', TLS 1.2 or later. With client certificates `required`,
        /// only clients with a certificate of ``IoTListener/ListenerTLS/clientCAPath`` connect (the admin key
        /// is still needed).
        public var tls: ListenerTLS?
        /// Idle timeout, request head deadline and connection caps (``IoTListener/ListenerLimits``; its
        /// defaults).
        public var limits: ListenerLimits

        /// Creates a configuration; every argument has the default documented on its property.
        public init(
            host: String = "127.0.0.1",
            port: Int = 8081,
            adminAPIKey: String? = nil,
            maxExportPoints: Int = 1_000_000,
            maxBodyBytes: Int = 1 << 20,
            brokerAuthKey: String? = nil,
            tls: ListenerTLS? = nil,
            limits: ListenerLimits = .init()
        ) {
            self.tls = tls
            self.limits = limits
            self.host = host
            self.port = port
            self.adminAPIKey = adminAPIKey
            self.maxExportPoints = maxExportPoints
            self.maxBodyBytes = maxBodyBytes
            self.brokerAuthKey = brokerAuthKey
        }

        /// Checks `port`, `maxBodyBytes`, `maxExportPoints` and `limits`.
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            try IoTLimits.checkSetting(port, "port", in: 0...65_535)
            try IoTLimits.checkSetting(maxBodyBytes, "maxBodyBytes", in: 1...(1 << 30), unit: "bytes")
            try IoTLimits.checkSetting(maxExportPoints, "maxExportPoints", in: 1...100_000_000)
            do { try limits.validate() } catch { throw IoTError(.invalidArgument, "limits.\(error.message)") }
        }
    }
}

extension ManagementServer.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey {
        case host, port, adminAPIKey, maxExportPoints, maxBodyBytes, tls, limits
    }

    /// Reads `management:` of iotd.yaml; a missing key keeps its default. The broker key is not read here
    /// (iotd takes it from `brokerAccounts.emqx`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            host: try c.decode(.host, or: d.host), port: try c.decode(.port, or: d.port),
            adminAPIKey: try c.decodeIfPresent(String.self, forKey: .adminAPIKey),
            maxExportPoints: try c.decode(.maxExportPoints, or: d.maxExportPoints),
            maxBodyBytes: try c.decode(.maxBodyBytes, or: d.maxBodyBytes),
            tls: try c.decodeIfPresent(ListenerTLS.self, forKey: .tls), limits: try c.decode(.limits, or: d.limits))
    }
}
