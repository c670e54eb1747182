import Metrics
import Synchronization

/// A snapshot of the ingest accounting. Every message received ends in exactly one counter:
/// `received == stored + rejected + dropped + inFlight`.
public struct IngestStatistics: Sendable, Hashable {
    /// Messages handed to the ingestor.
    public var received: Int = 0
    /// Messages whose points are committed to the point store.
    public var stored: Int = 0
    /// Messages refused because of their content or sender, by reason (`malformed_payload`, `unknown_device`, …).
    public var rejected: [String: Int] = [:]
    /// Messages not taken although they were valid, by reason (`backpressure`, `shutdown`, `journal`).
    public var dropped: [String: Int] = [:]
    /// Messages journaled and acknowledged but not yet committed to the point store.
    public var inFlight: Int = 0
    /// Points committed to the point store.
    public var pointsStored: Int = 0
    /// Of ``pointsStored``, points that replaced a different value already stored for the same
    /// (device, signal, time) (``DuplicatePolicy/lastWriteWins``), as far as the point store tells
    /// (``PointStore/writeReporting(_:)``).
    public var pointsOverwritten: Int = 0

    /// The sum of all rejected reasons.
    public var rejectedTotal: Int { rejected.values.reduce(0, +) }
    /// The sum of all dropped reasons.
    public var droppedTotal: Int { dropped.values.reduce(0, +) }
    /// Whether the accounting identity holds.
    public var isBalanced: Bool { received == stored + rejectedTotal + droppedTotal + inFlight }
}

/// The ingest counters, kept locally (for snapshots) and reported through swift-metrics:
/// `iot_ingest_received_total{transport}`, what became of them in
/// `iot_ingest_messages_total{outcome="stored|rejected|dropped", transport, reason}` (a family of its own, so
/// that `sum(iot_ingest_messages_total)` counts each message once), `iot_ingest_points_stored_total`,
/// `iot_ingest_points_overwritten_total`, `iot_ingest_in_flight` (gauge) and `iot_ingest_commit_batch_points`
/// (histogram).
final class IngestAccounting: Sendable {
    private struct Key: Hashable {
        var outcome: String
        var transport: String
        var reason: String
    }
    private let stats = Mutex(IngestStatistics())
    private let counters = Mutex<[Key: Counter]>([:])
    private let pointsCounter = Counter(label: "iot_ingest_points_stored_total")
    private let overwrittenCounter = Counter(label: "iot_ingest_points_overwritten_total")
    private let inFlightGauge = Gauge(label: "iot_ingest_in_flight")
    let batchRecorder = Recorder(label: "iot_ingest_commit_batch_points")

    var snapshot: IngestStatistics { stats.withLock { $0 } }

    private func count(_ outcome: String, _ transport: String, _ reason: String = "", by n: Int = 1) {
        let key = Key(outcome: outcome, transport: transport, reason: reason)
        let counter = counters.withLock { dict in
            if let c = dict[key] { return c }
            var dims = [("outcome", outcome), ("transport", transport)]
            if !reason.isEmpty { dims.append(("reason", reason)) }
            let c =
                outcome == "received"
                ? Counter(label: "iot_ingest_received_total", dimensions: [("transport", transport)])
                : Counter(label: "iot_ingest_messages_total", dimensions: dims)
            dict[key] = c
            return c
        }
        counter.increment(by: n)
    }

    func received(_ transport: String, count n: Int = 1) {
        stats.withLock { $0.received += n }
        count("received", transport, by: n)
    }

    func rejected(_ transport: String, _ reason: String) {
        stats.withLock { $0.rejected[reason, default: 0] += 1 }
        count("rejected", transport, reason)
    }

    func dropped(_ transport: String, _ reason: String) {
        stats.withLock { $0.dropped[reason, default: 0] += 1 }
        count("dropped", transport, reason)
    }

    func journaled(count: Int = 1) {
        let n = stats.withLock { s in
            s.inFlight += count
            return s.inFlight
        }
        inFlightGauge.record(n)
    }

    /// Messages without points: stored at once.
    func storedEmpty(_ transport: String) {
        stats.withLock { $0.stored += 1 }
        count("stored", transport)
    }

    /// Points of a commit that replaced a different stored value.
    func overwrote(points: Int) {
        stats.withLock { $0.pointsOverwritten += points }
        overwrittenCounter.increment(by: points)
    }

    /// A commit of `messages` per transport and `points` in total.
    func committed(messages: [String: Int], points: Int) {
        let total = messages.values.reduce(0, +)
        let n = stats.withLock { s in
            s.stored += total
            s.inFlight -= total
            s.pointsStored += points
            return s.inFlight
        }
        for (transport, k) in messages { count("stored", transport, by: k) }
        pointsCounter.increment(by: points)
        inFlightGauge.record(n)
        batchRecorder.record(points)
    }
}
