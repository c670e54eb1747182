import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Wall time and sleeping, injected everywhere time matters, so tests drive time by hand.
///
/// Nothing in the rules or the ingestor calls a system clock directly: the daemon passes
/// ``SystemClock``, tests pass `IoTTesting.ManualClock`.
///
/// ## Implementing a clock
/// - ``now()`` is UTC milliseconds since 1970 and never goes backwards within one clock.
/// - ``sleep(until:)`` returns at or after the instant, and throws `CancellationError` promptly when the
///   task is cancelled.
public protocol IoTClock: Sendable {
    /// The current time in UTC milliseconds.
    func now() -> Int64
    /// Suspends until `deadline` (UTC milliseconds).
    func sleep(until deadline: Int64) async throws
}

extension IoTClock {
    /// Suspends for `millis` milliseconds of this clock's time.
    public func sleep(forMillis millis: Int64) async throws {
        try await sleep(until: now() + millis)
    }
}

/// The system's real-time clock (`CLOCK_REALTIME`), made monotonic: it never returns less than it
/// returned before, even when the system clock is set back.
public struct SystemClock: IoTClock {
    private let last = LastValue()

    /// Creates a system clock.
    public init() {}

    public func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let ms = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
        return last.advance(to: ms)
    }

    public func sleep(until deadline: Int64) async throws {
        let delta = deadline - now()
        if delta > 0 { try await Task.sleep(for: .milliseconds(delta)) }
        try Task.checkCancellation()
    }
}

/// Seconds of `CLOCK_MONOTONIC`, for benchmarks: here, where no Foundation import makes `timespec`'s fields
/// ambiguous (a file importing both Foundation and Glibc failed to compile in a clean build, now and then).
package func monotonicClockSeconds() -> Double { clockSeconds(CLOCK_MONOTONIC) }

/// CPU seconds the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`), for benchmarks.
package func threadCPUSeconds() -> Double { clockSeconds(CLOCK_THREAD_CPUTIME_ID) }

private func clockSeconds(_ clock: clockid_t) -> Double {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

private final class LastValue: Sendable {
    private let value = Mutex<Int64>(0)
    func advance(to candidate: Int64) -> Int64 {
        value.withLock { v in
            if candidate > v { v = candidate }
            return v
        }
    }
}
