public import Prometheus

extension IoTPlatform {
    /// A swift-metrics factory over `registry` as the platform's metrics need it: names and labels made valid
    /// for Prometheus (`http.server.request.duration` → `http_server_request_duration`, from Hummingbird's
    /// metrics middleware), and histogram buckets that fit what is measured (ingest receipts take well under a
    /// millisecond; the default buckets start at 5 ms).
    ///
    /// ```swift
    /// let registry = PrometheusCollectorRegistry()
    /// MetricsSystem.bootstrap(IoTPlatform.metricsFactory(registry: registry))
    /// let platform = try IoTPlatform(configuration: configuration, prometheus: registry)
    /// ```
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .microseconds(2_500),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
        ]
        factory.durationHistogramBuckets["iot_ingest_receipt_seconds"] = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .microseconds(2_500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
            .milliseconds(250), .seconds(1),
        ]
        factory.valueHistogramBuckets["iot_ingest_commit_batch_points"] = [
            1, 10, 100, 500, 1_000, 5_000, 10_000, 25_000, 50_000,
        ]
        factory.nameAndLabelSanitizer = { name, labels in
            (prometheusName(name), labels.map { (prometheusName($0.0), $0.1) })
        }
        return factory
    }
}

/// `name` with every character Prometheus does not allow in a metric or label name replaced by `_`.
func prometheusName(_ name: String) -> String {
    var out = ""
    for (i, c) in name.unicodeScalars.enumerated() {
        let allowed =
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" || c == ":" || (i > 0 && c >= "0" && c <= "9")
        out.unicodeScalars.append(allowed ? c : "_")
    }
    return out
}
