import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 23, item 5, against the real thing: what `GET …/export?format=lp` streams is written, as it is, into
/// Debian's InfluxDB 1.x (`influxd`, started on loopback in a temporary directory) and read back with InfluxQL:
/// every point, with its time and value.
@Suite(.serialized) struct InfluxExportTests {
    @Test func theLineProtocolExportLoadsIntoInfluxDBAndReadsBackWithInfluxQL() async throws {
        try await onOwnThread {
            let directory = TemporaryDirectory("influxdb")
            let port = ChildProcess.freeLoopbackPort()
            let influxd = try Self.startInfluxDB(in: directory, port: port)
            defer { _ = influxd.stop() }

            let iotd = IotdProcess("iotd-influx")
            try iotd.configure(
                iotd.preamble() + """
                    tenants:
                      - id: acme
                        products: [{ id: thermo, signals: [{ name: temp }, { name: running, type: bool }, { name: label, type: text }] }]
                        devices: [{ uid: t-1, product: thermo }, { uid: "t=2,x", product: thermo }]
                    """)
            try iotd.start()
            defer { iotd.stop() }
            var sent = 0
            for (uid, path) in [("t-1", "t-1"), ("t=2,x", "t=2,x")] {
                let token = try iotd.issueToken(tenant: "acme", device: path)
                let records = (0..<500).map { i in
                    #"{"ts": \#(1_700_000_000_000 + i * 1_000), "values": {"temp": \#(Double(i) / 8), "running": \#(i % 2 == 0), "label": "n\"\#(i)"}}"#
                }
                let r = try LoopbackHTTPClient(port: iotd.httpPort).request(
                    "POST", "/api/v1/devices/\(path)/telemetry",
                    headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                    body: Array("[\(records.joined(separator: ","))]".utf8))
                #expect(r.status == 200, "\(uid): \(r.text)")
                sent += 500
            }
            var export = ""
            try eventually("every point is stored", seconds: 10) {
                export = try iotd.api("GET", "/api/v1/tenants/acme/export?format=lp").text
                return export.split(separator: "\n").count == sent * 3
            }

            let influx = try LoopbackHTTPClient(port: port)
            let created = try influx.request(
                "POST", "/query", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                body: Array("q=CREATE DATABASE iot".utf8))
            #expect(created.status == 200, "\(created.text)")
            let written = try influx.request("POST", "/write?db=iot&precision=ns", body: Array(export.utf8))
            #expect(written.status == 204, "InfluxDB refused the export: \(written.status) \(written.text.prefix(300))")

            let query = { (q: String) throws -> [[Any]] in try Self.query(port: port, q) }
            #expect(
                try query("SELECT count(temp), count(running), count(label) FROM thermo").first?.dropFirst().compactMap
                {
                    ($0 as? NSNumber)?.intValue
                } == [1_000, 1_000, 1_000])
            let row = try #require(
                try query(#"SELECT temp, running, label FROM thermo WHERE device = 't=2,x' ORDER BY time DESC LIMIT 1"#)
                    .first)
            let time = (row[0] as? NSNumber)?.int64Value ?? 0
            #expect(time == 1_700_000_499_000, "\(row)")
            #expect((row[1] as? NSNumber)?.doubleValue == 499.0 / 8, "\(row)")
            #expect((row[2] as? NSNumber)?.boolValue == false && row[3] as? String == "n\"499", "\(row)")
        }
    }

    /// `exports.influxdb`: iotd forwards every committed point to InfluxDB; started before InfluxDB is, it keeps
    /// the points and retries until InfluxDB answers, then creates the database and writes them all.
    @Test func committedPointsAreForwardedToInfluxDBOnceItAnswers() async throws {
        try await onOwnThread {
            let directory = TemporaryDirectory("influxdb-sink")
            let port = ChildProcess.freeLoopbackPort()
            let iotd = IotdProcess("iotd-influx-sink")
            try iotd.configure(
                iotd.preamble() + """
                    exports:
                      influxdb: { url: "http://127.0.0.1:\(port)", database: plant, batchPoints: 700, flushMillis: 200 }
                    tenants:
                      - id: acme
                        products: [{ id: meter, signals: [{ name: kwh }] }]
                        devices: [{ uid: m-1, product: meter }]
                    """)
            try iotd.start()
            defer { iotd.stop() }
            let token = try iotd.issueToken(tenant: "acme", device: "m-1")
            let records = (0..<2_000).map { #"{"ts": \#(1_700_000_000_000 + $0 * 1_000), "kwh": \#($0)}"# }
            let r = try LoopbackHTTPClient(port: iotd.httpPort).request(
                "POST", "/api/v1/devices/m-1/telemetry",
                headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                body: Array("[\(records.joined(separator: ","))]".utf8))
            #expect(r.status == 200, "\(r.text)")
            usleep(1_000_000)  // a few failed writes: nothing listens on the port yet
            let influxd = try Self.startInfluxDB(in: directory, port: port)
            defer { _ = influxd.stop() }
            try eventually("InfluxDB holds every point", seconds: 45, pollMillis: 300) {
                let count = try Self.query(port: port, "SELECT count(kwh) FROM meter", database: "plant").first?[1]
                return (count as? NSNumber)?.intValue == 2_000
            }
            let last = try #require(
                try Self.query(
                    port: port,
                    "SELECT kwh FROM meter WHERE tenant = 'acme' AND device = 'm-1' ORDER BY time DESC LIMIT 1",
                    database: "plant"
                ).first)
            #expect(
                (last[0] as? NSNumber)?.int64Value == 1_700_000_000_000 + 1_999_000
                    && (last[1] as? NSNumber)?.intValue == 1_999)
            let metrics = try LoopbackHTTPClient(port: iotd.apiPort).request("GET", "/metrics").text
            #expect(metrics.contains("iot_influxdb_write_failures_total"), "the failed writes are counted")
        }
    }

    /// Starts `influxd` on 127.0.0.1:`port` with its files in `directory`; returns once `/ping` answers. Throws
    /// when Debian's `influxdb` is not installed.
    static func startInfluxDB(in directory: TemporaryDirectory, port: Int) throws -> ChildProcess {
        guard access("/usr/bin/influxd", X_OK) == 0 else {
            throw IntegrationFailure(
                description: "influxd is not installed: scripts/test.sh installs it (apt-get install influxdb)")
        }
        let rpc = ChildProcess.freeLoopbackPort()
        try """
        reporting-disabled = true
        bind-address = "127.0.0.1:\(rpc)"
        [meta]
          dir = "\(directory.path)/meta"
        [data]
          dir = "\(directory.path)/data"
          wal-dir = "\(directory.path)/wal"
        [http]
          bind-address = "127.0.0.1:\(port)"
          log-enabled = false
        [monitor]
          store-enabled = false
        """.write(toFile: directory.path + "/influxdb.conf", atomically: true, encoding: .utf8)
        let influxd = try ChildProcess(["/usr/bin/influxd", "-config", directory.path + "/influxdb.conf"])
        do {
            try eventually("influxd answers /ping", seconds: 30) {
                (try? LoopbackHTTPClient(port: port).request("GET", "/ping").status) == 204
            }
        } catch {
            _ = influxd.stop()
            throw error
        }
        return influxd
    }

    /// The rows of the first series an InfluxQL query answers.
    static func query(port: Int, _ q: String, database: String = "iot") throws -> [[Any]] {
        let encoded = q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q
        let r = try LoopbackHTTPClient(port: port).request("GET", "/query?db=\(database)&epoch=ms&q=\(encoded)")
        let object = try JSONSerialization.jsonObject(with: Data(r.text.utf8)) as? [String: Any]
        let results = object?["results"] as? [[String: Any]]
        let series = results?.first?["series"] as? [[String: Any]]
        return series?.first?["values"] as? [[Any]] ?? []
    }
}
