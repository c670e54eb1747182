public import IoTCore
public import IoTListener

extension HTTPIngestTransport {
    /// Where the device listener binds and what it accepts.
    ///
    /// ```swift
    /// var configuration = HTTPIngestTransport.Configuration()
    /// configuration.host = "0.0.0.0"
    /// ```
    ///
    /// The per-device rate limit is the ingestor's (``IoTCore/Ingestor/Configuration/rateLimit``): it covers
    /// every transport, and over it this listener answers 429 with `Retry-After`.
    public struct Configuration: Sendable {
        /// The address to bind. Default `"127.0.0.1"` (loopback only); `"0.0.0.0"` for every interface.
        public var host: String
        /// The TCP port. Default `8080`; `0` lets the kernel pick a free port (see
        /// ``HTTPIngestTransport/listeningPort()``).
        public var port: Int
        /// The largest request body accepted, in bytes; larger requests get 413. Default 1 MiB.
        public var maxBodyBytes: Int
        /// Media types (without parameters, lowercase) read with ``IoTCore/SenMLParser``. Default
        /// `["application/senml+json"]`. `application/json`, any other `…+json` type, and a request without
        /// `Content-Type` are read with ``IoTCore/JSONParser``; anything else gets 415 on
        /// `/api/v1/devices/{uid}/telemetry`, unless the device's product names a parser
        /// (``IoTCore/Product/parser``, e.g. a script reading CSV), which then reads any type. The ThingsBoard path reads every non-SenML body as JSON, as
        /// ThingsBoard does.
        public var senmlContentTypes: Set<String>
        /// TLS on the listener (HTTPS), or `nil` (the default) for plain HTTP. With client certificates, a
        /// request without `Authorization` is authenticated by the connection's verified client certificate.
        public var tls: ListenerTLS?
        /// Idle timeout, request head deadline and connection caps (``ListenerLimits``; its defaults).
        public var limits: ListenerLimits

        /// Creates a configuration; every argument has the default documented on its property.
        public init(
            host: String = "127.0.0.1",
            port: Int = 8080,
            maxBodyBytes: Int = 1 << 20,
            senmlContentTypes: Set<String> = ["application/senml+json"],
            tls: ListenerTLS? = nil,
            limits: ListenerLimits = .init()
        ) {
            self.tls = tls
            self.limits = limits
            self.host = host
            self.port = port
            self.maxBodyBytes = maxBodyBytes
            self.senmlContentTypes = senmlContentTypes
        }

        /// Checks the configuration; ``HTTPIngestTransport/run()`` calls it before binding.
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` saying what to change.
        public func validate() throws(IoTError) {
            guard (0...65_535).contains(port) else {
                throw IoTError(
                    .invalidArgument, "HTTP ingest port \(port) is out of range; use 1–65535, or 0 for any free port")
            }
            try IoTLimits.checkSetting(maxBodyBytes, "maxBodyBytes", in: 1...(1 << 30), unit: "bytes")
            do { try limits.validate() } catch {
                throw IoTError(.invalidArgument, "HTTP ingest limits: \(error.message)")
            }
        }
    }
}

extension HTTPIngestTransport.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case host, port, maxBodyBytes, senmlContentTypes, tls, limits }

    /// Reads `host`, `port`, `maxBodyBytes`, `senmlContentTypes`, `tls` and `limits` (`http:` in iotd.yaml); a
    /// missing key keeps its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            host: try c.decode(.host, or: d.host), port: try c.decode(.port, or: d.port),
            maxBodyBytes: try c.decode(.maxBodyBytes, or: d.maxBodyBytes),
            senmlContentTypes: try c.decode(.senmlContentTypes, or: d.senmlContentTypes),
            tls: try c.decodeIfPresent(ListenerTLS.self, forKey: .tls), limits: try c.decode(.limits, or: d.limits))
    }
}
