import Metrics
import Synchronization

/// One swift-metrics `Timer` per transport under one label, made once each (a factory lookup per message
/// would cost more than the measurement).
final class TransportTimers: Sendable {
    private let label: String
    private let timers = Mutex<[String: Timer]>([:])

    init(label: String) {
        self.label = label
    }

    /// Records the time since `started`, `count` times (each message of a batch waited as long).
    func record(_ transport: String, since started: ContinuousClock.Instant, count: Int) {
        let elapsed = nanoseconds(since: started)
        let timer = timers.withLock { t in
            if let timer = t[transport] { return timer }
            let timer = Timer(label: label, dimensions: [("transport", transport)], preferredDisplayUnit: .seconds)
            t[transport] = timer
            return timer
        }
        for _ in 0..<count { timer.recordNanoseconds(elapsed) }
    }
}

extension Timer {
    /// Records the time since `started`.
    package func recordElapsed(since started: ContinuousClock.Instant) {
        recordNanoseconds(nanoseconds(since: started))
    }
}

/// The whole nanoseconds from `started` to now, as `Timer.recordNanoseconds(_:)` takes them.
private func nanoseconds(since started: ContinuousClock.Instant) -> Int64 {
    let elapsed = ContinuousClock.now - started
    return elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
}
