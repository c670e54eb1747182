import Metrics
import Synchronization

/// Gauges set from a sample of run-time state (MQTT clients, CoAP observations, Modbus devices) each time
/// `/metrics` is scraped. A series that is not in the latest sample (a removed client) is destroyed, so
/// the scrape does not keep reporting it.
final class SampledGauges: Sendable {
    /// One gauge value of a sample.
    struct Value {
        var label: String
        var dimensions: [(String, String)]
        var value: Double
    }

    private struct Key: Hashable {
        var label: String
        var dimensions: [String]
    }

    private let gauges = Mutex<[Key: Gauge]>([:])

    /// Sets every gauge of `sample` and destroys those of the previous sample that it leaves out.
    func update(_ sample: [Value]) {
        gauges.withLock { gauges in
            var seen = Set<Key>()
            for v in sample {
                let key = Key(label: v.label, dimensions: v.dimensions.flatMap { [$0.0, $0.1] })
                seen.insert(key)
                let gauge = gauges[key] ?? Gauge(label: v.label, dimensions: v.dimensions)
                gauges[key] = gauge
                gauge.record(v.value)
            }
            for (key, gauge) in gauges where !seen.contains(key) {
                gauge.destroy()
                gauges[key] = nil
            }
        }
    }

    /// Counts of `states` under `label{state}`, every state of `all` present (0 when none is in it).
    static func counts(_ label: String, states: [String], all: [String]) -> [Value] {
        var n = Dictionary(uniqueKeysWithValues: all.map { ($0, 0) })
        for s in states { n[s, default: 0] += 1 }
        return n.sorted { $0.key < $1.key }.map {
            Value(label: label, dimensions: [("state", $0.key)], value: Double($0.value))
        }
    }
}
