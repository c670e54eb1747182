import Foundation
public import IoTCore
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

/// Forwards every committed point to InfluxDB 1.x (`POST /write`, line protocol), the path to Grafana's
/// InfluxDB data source: `<product>,tenant=<tenant>,device=<uid> <signal>=<value> <time>`.
///
/// A ``PointObserver`` of the ``Ingestor`` (it only copies each committed batch into a bounded buffer, so ingest
/// never waits for InfluxDB) and a `Service` that writes the buffer every ``Configuration/flushMillis`` in
/// requests of at most ``Configuration/batchPoints``. While InfluxDB is down or refuses, the points wait and the
/// request is retried with backoff; beyond ``Configuration/maxBufferedPoints`` the oldest are dropped and counted.
/// A missing database is created (`CREATE DATABASE`). Put it before the ingestor in the service group, so at
/// shutdown it writes what the ingestor drained.
///
/// ```yaml
/// exports:
///   influxdb: { url: http://127.0.0.1:8086, database: iot, username: iotd, passwordFile: /etc/iotd/influx.pw }
/// ```
///
/// Metrics: `iot_influxdb_points_total{result=written|dropped}`, `iot_influxdb_write_failures_total`.
public final class InfluxDBSink: PointObserver, Service, Sendable {
    /// `exports.influxdb` of iotd.yaml.
    public struct Configuration: Sendable, Hashable, Decodable {
        /// InfluxDB's HTTP address, e.g. `http://127.0.0.1:8086`.
        public var url: String
        /// The database; created when missing. Default `iot`.
        public var database: String
        /// A user, with ``password``, when InfluxDB has authentication on.
        public var username: String?
        /// The user's password (from `passwordFile` in iotd.yaml).
        public var password: String?
        /// Points per write request, 1 to 100,000. Default 5,000.
        public var batchPoints: Int
        /// Milliseconds between writes, 10 to 600,000. Default 1,000.
        public var flushMillis: Int
        /// Points kept while InfluxDB cannot take them; the oldest are dropped beyond. Default 200,000.
        public var maxBufferedPoints: Int

        /// Creates a configuration.
        public init(
            url: String, database: String = "iot", username: String? = nil, password: String? = nil,
            batchPoints: Int = 5_000, flushMillis: Int = 1_000, maxBufferedPoints: Int = 200_000
        ) {
            self.url = url
            self.database = database
            self.username = username
            self.password = password
            self.batchPoints = batchPoints
            self.flushMillis = flushMillis
            self.maxBufferedPoints = maxBufferedPoints
        }

        private enum CodingKeys: String, CodingKey {
            case url, database, username, passwordFile, batchPoints, flushMillis, maxBufferedPoints
        }

        /// Reads `exports.influxdb`; the password comes from `passwordFile` (read once, trailing newline cut).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Self(url: "")
            var password: String?
            if let file = try c.decodeIfPresent(String.self, forKey: .passwordFile) {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .passwordFile, in: c,
                        debugDescription: "cannot read \(file); check the path and permissions")
                }
                password = text.trimmingCharacters(in: .newlines)
            }
            self.init(
                url: try c.decode(String.self, forKey: .url), database: try c.decode(.database, or: d.database),
                username: try c.decodeIfPresent(String.self, forKey: .username), password: password,
                batchPoints: try c.decode(.batchPoints, or: d.batchPoints),
                flushMillis: try c.decode(.flushMillis, or: d.flushMillis),
                maxBufferedPoints: try c.decode(.maxBufferedPoints, or: d.maxBufferedPoints))
        }

        /// Checks the values.
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw IoTError(.invalidArgument, "url \"\(url)\" must start with http:// or https://")
            }
            guard !database.isEmpty, !database.contains(where: { $0 == "\"" || $0 == "\n" }) else {
                throw IoTError(.invalidArgument, "database \"\(database)\" must be a name without quotes")
            }
            guard (1...100_000).contains(batchPoints) else {
                throw IoTError(.invalidArgument, "batchPoints \(batchPoints) is out of range; use 1 to 100000")
            }
            guard (10...600_000).contains(flushMillis) else {
                throw IoTError(.invalidArgument, "flushMillis \(flushMillis) is out of range; use 10 to 600000")
            }
            guard maxBufferedPoints >= batchPoints else {
                throw IoTError(.invalidArgument, "maxBufferedPoints \(maxBufferedPoints) must be at least batchPoints")
            }
        }
    }

    private struct Pending {
        var tenant: TenantID
        var point: Point
    }

    private let configuration: Configuration
    private let registry: any RegistryStore
    private let logger: Logger
    private let buffer = Mutex<[Pending]>([])
    /// Each device's product (its measurement), learnt from the registry.
    private let products = Mutex<[String: String]>([:])

    /// Creates the sink.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a bad configuration.
    public init(
        configuration: Configuration, registry: any RegistryStore, logger: Logger = Logger(label: "iot.influxdb")
    )
        throws(IoTError)
    {
        try configuration.validate()
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
    }

    /// Points waiting to be written.
    public var bufferedPoints: Int { buffer.withLock { $0.count } }

    public func pointsCommitted(_ batch: PointBatch) async {
        let dropped = buffer.withLock { pending -> Int in
            pending.append(contentsOf: batch.points.map { Pending(tenant: batch.tenant, point: $0) })
            let over = pending.count - configuration.maxBufferedPoints
            if over > 0 { pending.removeFirst(over) }
            return max(0, over)
        }
        if dropped > 0 {
            Counter(label: "iot_influxdb_points_total", dimensions: [("result", "dropped")]).increment(by: dropped)
        }
    }

    /// Writes the buffer every ``Configuration/flushMillis`` until shutdown, then once more.
    public func run() async throws {
        var backoff = configuration.flushMillis
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let wait = backoff
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(wait)) }
            } catch {
                break
            }
            backoff = await flush() ? configuration.flushMillis : min(backoff * 2, 30_000)
        }
        _ = await flush()
    }

    /// Writes what is buffered, a request at a time; `false` when a request failed (its points wait).
    @discardableResult
    public func flush() async -> Bool {
        while true {
            let taken = buffer.withLock { pending -> [Pending] in
                let n = min(pending.count, configuration.batchPoints)
                defer { pending.removeFirst(n) }
                return Array(pending.prefix(n))
            }
            guard !taken.isEmpty else { return true }
            do {
                try await write(taken)
                Counter(label: "iot_influxdb_points_total", dimensions: [("result", "written")])
                    .increment(by: taken.count)
            } catch {
                Counter(label: "iot_influxdb_write_failures_total").increment()
                logger.warning(
                    "InfluxDB did not take the points; they wait for the next try",
                    metadata: ["points": "\(taken.count)", "error": "\(error)"])
                // Back in front, unless newer points filled the buffer meanwhile.
                let dropped = buffer.withLock { pending -> Int in
                    pending.insert(contentsOf: taken, at: 0)
                    let over = pending.count - configuration.maxBufferedPoints
                    if over > 0 { pending.removeFirst(over) }
                    return max(0, over)
                }
                if dropped > 0 {
                    Counter(label: "iot_influxdb_points_total", dimensions: [("result", "dropped")])
                        .increment(by: dropped)
                }
                return false
            }
        }
    }

    private func write(_ points: [Pending]) async throws {
        var body = ""
        for p in points {
            body += LineProtocol.line(
                measurement: try await product(of: p.point.device, in: p.tenant),
                tags: [("tenant", p.tenant.rawValue), ("device", p.point.device)], field: p.point.signal,
                value: p.point.value, time: p.point.time)
        }
        let base = configuration.url.hasSuffix("/") ? String(configuration.url.dropLast()) : configuration.url
        let database = configuration.database.addingQueryEscapes
        var request = CurlRequest(
            url: base + "/write?db=\(database)&precision=ns", method: "POST",
            headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(body.utf8))
        request.username = configuration.username
        request.password = configuration.password
        var answer = try await CurlClient.perform(request)
        if answer.status == 404, answer.text.contains("database not found") {
            var create = request
            create.url = base + "/query"
            create.headers = [("Content-Type", "application/x-www-form-urlencoded")]
            create.body = Array(("q=" + "CREATE DATABASE \"\(configuration.database)\"".addingQueryEscapes).utf8)
            _ = try await NotifierHTTP.send(create, channel: "influxdb")
            answer = try await CurlClient.perform(request)
        }
        guard (200..<300).contains(answer.status) else {
            throw IoTError(
                .unavailable,
                "InfluxDB at \(CurlClient.redact(base)) answered HTTP \(answer.status) \(answer.text.prefix(200))")
        }
    }

    private func product(of device: String, in tenant: TenantID) async throws -> String {
        let key = tenant.rawValue + "/" + device
        if let known = products.withLock({ $0[key] }) { return known }
        let product = try await registry.device(.tenant(tenant), uid: device)?.product.rawValue ?? "unknown"
        products.withLock { $0[key] = product }
        return product
    }
}

extension String {
    /// Percent-encoded for a query string or a form body (`=` and `&` kept only where the caller puts them).
    fileprivate var addingQueryEscapes: String {
        var out = ""
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded
            }
        }
        return out
    }

    fileprivate var leftPadded: String { count == 1 ? "0" + self : self }
}
