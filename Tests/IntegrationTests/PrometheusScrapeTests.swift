import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 22, item 6, from outside: Debian's `prometheus` scrapes `iotd serve` every second while a device
/// sends over HTTP at a steady rate. PromQL's ingest rate matches what was sent, the outcome family sums to
/// what was received (each message counted once), the latency histograms and the MQTT client's gauges are
/// there, and `logging.format: json` writes one JSON object per line.
@Suite(.serialized) struct PrometheusScrapeTests {
    @Test func prometheusSeesTheIngestRateThatWasSent() async throws {
        guard access("/usr/bin/prometheus", X_OK) == 0 else {
            Issue.record("prometheus is not installed: apt-get install prometheus (scripts/test.sh installs it)")
            return
        }
        try await onOwnThread {
            let directory = TemporaryDirectory("iotd-prometheus")
            let brokerPort = ChildProcess.freeLoopbackPort()
            try "listener \(brokerPort) 127.0.0.1\nallow_anonymous true\npersistence false\n".write(
                toFile: directory.path + "/mosquitto.conf", atomically: true, encoding: .utf8)
            let broker = try ChildProcess(["/usr/sbin/mosquitto", "-c", directory.path + "/mosquitto.conf"])
            defer { broker.stop(signal: SIGTERM) }
            try ChildProcess.waitForLoopbackPort(brokerPort)

            let iotd = IotdProcess("iotd-prometheus")
            try iotd.configure(
                iotd.preamble(logLevel: "info").replacingOccurrences(
                    of: "logging: { level: info }", with: "logging: { level: info, format: json }")
                        + """
                        outbound: { allow: [127.0.0.1] }
                        tenants:
                          - id: acme
                            products: [{ id: meter, signals: [{ name: seq }] }]
                            devices: [{ uid: m-1, product: meter }]
                        mqtt:
                          clients:
                            - id: plant
                              tenant: acme
                              broker: { host: 127.0.0.1, port: \(brokerPort) }
                              subscriptions: [{ template: "plant/{uid}/telemetry", qos: 1 }]
                        """)
            // stderr (the log) into the pipe that readLine reads.
            let iotdPath = try ChildProcess.builtProduct("iotd")
            let server = try ChildProcess([
                "/bin/sh", "-c", "exec '\(iotdPath)' serve --config '\(iotd.configPath)' 2>&1",
            ])
            defer { server.stop(signal: SIGTERM) }
            try waitFor(port: iotd.apiPort, path: "/readyz")

            // Every log line so far is one JSON object with the documented fields.
            var lines: [String] = []
            while lines.count < 3, let line = server.readLine(timeoutSeconds: 10) { lines.append(line) }
            #expect(lines.count >= 1, "iotd logged nothing at info")
            for line in lines {
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(
                    object?["level"] is String && object?["message"] is String && object?["ts"] is String
                        && object?["label"] is String,
                    "not a JSON log line: \(line)")
            }

            let prometheusPort = ChildProcess.freeLoopbackPort()
            try """
            global: { scrape_interval: 1s, evaluation_interval: 1s }
            scrape_configs:
              - job_name: iotd
                static_configs: [{ targets: ["127.0.0.1:\(iotd.apiPort)"] }]
            """.write(toFile: directory.path + "/prometheus.yml", atomically: true, encoding: .utf8)
            let prometheus = try ChildProcess([
                "/usr/bin/prometheus", "--config.file=" + directory.path + "/prometheus.yml",
                "--storage.tsdb.path=" + directory.path + "/tsdb", "--web.listen-address=127.0.0.1:\(prometheusPort)",
                "--log.level=error",
            ])
            defer { prometheus.stop(signal: SIGTERM) }
            try waitFor(port: prometheusPort, path: "/-/ready", seconds: 30)

            let token = try iotd.issueToken(tenant: "acme", device: "m-1")
            try eventually("a scrape with the MQTT client connected", seconds: 20) {
                (try Self.query(prometheusPort, #"iot_mqtt_client_connected{client="plant",tenant="acme"}"#)) == 1
            }

            // 40 messages a second for 15 s, on one keep-alive connection.
            let rate = 40.0
            let seconds = 15.0
            let device = try LoopbackHTTPClient(port: iotd.httpPort)
            let start = Date()
            var sent = 0
            var sentAt: [Double] = []
            while Date().timeIntervalSince(start) < seconds {
                let r = try device.request(
                    "POST", "/api/v1/devices/m-1/telemetry",
                    headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                    body: Array(#"{"seq": \#(sent)}"#.utf8))
                #expect(r.status == 200, "\(r.status) \(r.text)")
                sent += 1
                sentAt.append(Date().timeIntervalSince1970)
                let due = start.addingTimeInterval(Double(sent) / rate)
                let wait = due.timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
            }
            let end = Date().timeIntervalSince1970

            try eventually("Prometheus scraped every message", seconds: 15) {
                (try Self.query(prometheusPort, #"sum(iot_ingest_received_total{transport="http"})"#)) == Double(sent)
            }
            // The rate over the last 10 s of sending, as a dashboard would show it, against what was sent then
            // (about 40/s; less on a loaded machine).
            let at = end - 1
            let expected = Double(sentAt.filter { $0 > at - 10 && $0 <= at }.count) / 10
            let measured = try #require(
                try Self.query(prometheusPort, #"sum(rate(iot_ingest_received_total{transport="http"}[10s]))"#, at: at))
            #expect(abs(measured - expected) / expected < 0.2, "PromQL rate \(measured)/s, sent \(expected)/s")
            // Each message is in one outcome only: the family sums to what was received.
            try eventually("the outcomes sum to what was received, once committed", seconds: 15) {
                (try Self.query(prometheusPort, "sum(iot_ingest_messages_total)")) == Double(sent)
            }
            // Histograms: receipt, commit and the API's by route.
            let p99 = try #require(
                try Self.query(
                    prometheusPort,
                    #"histogram_quantile(0.99, sum by (le) (rate(iot_ingest_receipt_seconds_bucket{transport="http"}[1m])))"#
                ))
            #expect(p99 > 0 && p99 < 1, "receipt p99 \(p99) s")
            #expect(try Self.query(prometheusPort, "sum(iot_ingest_commit_seconds_count)") ?? 0 > 0)
            #expect(
                try Self.query(
                    prometheusPort,
                    #"sum(http_server_request_duration_count{http_route="/api/v1/tenants/{tenant}/devices/{uid}/tokens"})"#
                )
                    == 1)
            #expect(try Self.query(prometheusPort, #"iot_mqtt_clients{state="connected"}"#) == 1)
            #expect(try Self.query(prometheusPort, "iot_ingest_queue_points") != nil)

            // Every query of the shipped Grafana dashboard is valid PromQL for this Prometheus (400 otherwise),
            // and those on ingest find data.
            let dashboard = try String(
                contentsOfFile: Self.repository + "/Examples/grafana/iotd-dashboard.json", encoding: .utf8)
            let expressions = Self.expressions(in: try JSONSerialization.jsonObject(with: Data(dashboard.utf8)))
            #expect(expressions.count > 20)
            for expr in expressions {
                let promQL = expr.replacingOccurrences(of: "$__rate_interval", with: "1m")
                    .replacingOccurrences(of: "$tenant", with: ".*")
                let r = try LoopbackHTTPClient(port: prometheusPort).request(
                    "GET", "/api/v1/query?query=" + promQL.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                )
                #expect(r.status == 200, "\(expr): \(r.text)")
                if expr.contains("iot_ingest_received_total") {
                    #expect(r.text.contains(#""result":[{"#), "no data for \(expr): \(r.text)")
                }
            }
        }
    }

    /// The repository's root (this file is Tests/IntegrationTests/…).
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Every `expr` of a Grafana dashboard, at any depth.
    static func expressions(in object: Any) -> [String] {
        if let d = object as? [String: Any] {
            if let expr = d["expr"] as? String { return [expr] }
            return d.values.flatMap(expressions)
        }
        if let a = object as? [Any] { return a.flatMap(expressions) }
        return []
    }

    /// The value of an instant PromQL query (now, or at `time`), `nil` when it has no result.
    static func query(_ port: Int, _ promQL: String, at time: Double? = nil) throws -> Double? {
        var path = "/api/v1/query?query=" + promQL.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        if let time { path += "&time=\(time)" }
        let r = try LoopbackHTTPClient(port: port).request("GET", path)
        guard r.status == 200,
            let object = try JSONSerialization.jsonObject(with: Data(r.text.utf8)) as? [String: Any],
            let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
            let value = result.first?["value"] as? [Any], value.count == 2, let text = value[1] as? String
        else { return nil }
        return Double(text)
    }

}
