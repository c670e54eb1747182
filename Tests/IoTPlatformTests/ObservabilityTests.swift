import Foundation
import Logging
import Metrics
import Prometheus
import Synchronization
import Testing

@testable import IoTPlatform

/// Issue 22, item 6: the JSON log format, the Prometheus names of metrics from other libraries, and the
/// histogram buckets of the platform's factory.
@Suite struct ObservabilityTests {
    /// The text handler writes what swift-log's `StreamLogHandler` writes (timestamps aside), its metadata and
    /// the message's merged, though it formats them only when a message is written.
    @Test func theTextHandlerWritesTheStreamHandlersLines() throws {
        let (text, stream) = (CapturedLines(), CapturedLines())
        var handlers: [any LogHandler] = [
            TextLogHandler(label: "iot.test", stream: text),
            StreamLogHandler(label: "iot.test", stream: stream, metadataProvider: nil),
        ]
        for i in handlers.indices {
            handlers[i].logLevel = .debug
            handlers[i][metadataKey: "hb.request.id"] = "r-1"
            handlers[i][metadataKey: "instance"] = "a"
        }
        for handler in handlers {
            var logger = Logger(label: "iot.test") { _ in handler }
            logger.logLevel = .debug
            logger.info("first", metadata: ["client": "plant-1", "instance": "b"])
            logger.debug("second")
            logger.trace("below the level")
            logger[metadataKey: "instance"] = nil
            logger.warning("third", metadata: ["sizes": ["1", "2"]])
        }
        /// The lines without their leading timestamp.
        func messages(_ lines: CapturedLines) -> [String] {
            lines.text.split(separator: "\n").map { String($0.drop { $0 != " " }) }
        }
        #expect(messages(text).count == 3)
        #expect(messages(text) == messages(stream))
        #expect(messages(text).first?.contains("client=plant-1") == true, "\(messages(text))")
    }

    @Test func eachLogEventIsOneJSONObjectPerLine() throws {
        let lines = Mutex<[String]>([])
        var handler = JSONLogHandler(label: "iot.test") { line in lines.withLock { $0.append(line) } }
        handler.logLevel = .debug
        handler[metadataKey: "instance"] = "a"
        var logger = Logger(label: "iot.test") { _ in handler }
        logger.logLevel = .debug
        logger.info(
            "a \"quoted\"\nmessage",
            metadata: ["client": "plant-1", "sizes": ["1", "2"], "nested": ["k": "v\t"], "instance": "b"])
        logger.trace("below the level")
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1, "one line: \(line)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "info" && object["label"] as? String == "iot.test")
        #expect(object["message"] as? String == "a \"quoted\"\nmessage")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["client"] as? String == "plant-1" && metadata["instance"] as? String == "b")
        #expect(metadata["sizes"] as? [String] == ["1", "2"])
        #expect((metadata["nested"] as? [String: String])?["k"] == "v\t")
        let ts = try #require(object["ts"] as? String)
        #expect(
            ts.count == 24 && ts.hasSuffix("Z") && ISO8601DateFormatter.withFractionalSeconds.date(from: ts) != nil,
            "\(ts)")
        #expect(object["line"] is Int && object["file"] is String)
    }

    @Test func namesAreMadeValidForPrometheus() {
        #expect(prometheusName("http.server.request.duration") == "http_server_request_duration")
        #expect(prometheusName("iot_ingest_received_total") == "iot_ingest_received_total")
        #expect(prometheusName("9lives-x") == "_lives_x")
        #expect(prometheusName("a:b1") == "a:b1")
    }

    @Test func theFactoryEmitsValidNamesAndFineReceiptBuckets() {
        let registry = PrometheusCollectorRegistry()
        let factory = IoTPlatform.metricsFactory(registry: registry)
        Counter(label: "hb.requests", dimensions: [("http.route", "/x")], factory: factory).increment()
        Timer(label: "iot_ingest_receipt_seconds", dimensions: [("transport", "mqtt")], factory: factory)
            .recordNanoseconds(120_000)
        let text = registry.emitToString()
        #expect(text.contains(#"hb_requests{http_route="/x"} 1"#), "\(text)")
        // 120 µs lands in the 250 µs bucket, not only in the first of 5 ms.
        #expect(text.contains(#"iot_ingest_receipt_seconds_bucket{transport="mqtt",le="0.0001"} 0"#), "\(text)")
        #expect(text.contains(#"iot_ingest_receipt_seconds_bucket{transport="mqtt",le="0.00025"} 1"#), "\(text)")
    }
}

extension ISO8601DateFormatter {
    fileprivate static var withFractionalSeconds: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }
}

/// Text written to a log stream, for comparison.
final class CapturedLines: TextOutputStream, Sendable {
    private let lines = Mutex("")
    var text: String { lines.withLock { $0 } }
    func write(_ string: String) { lines.withLock { $0 += string } }
}
