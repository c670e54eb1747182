import IoTCore
import Metrics
import Synchronization

/// Limits failed authentication attempts per key (``DeviceAuthService`` keys on the source address and on
/// the username): after ``Configuration/maxFailures`` failures within ``Configuration/window``, the
/// key is blocked for ``Configuration/blockDuration`` (every attempt refused without checking the
/// credential). The table is bounded (``Configuration/maxAddresses``) and never flushed: a full table
/// evicts an entry that is not blocked.
///
/// Counters: `iot_auth_failures_total{transport}` for every failed attempt and
/// `iot_auth_blocked_total{transport}` for every attempt refused while blocked.
public final class FailedAttemptLimiter: Sendable {
    /// Limits.
    public struct Configuration: Sendable {
        /// Failures allowed per address within the window. Default 10.
        public var maxFailures: Int
        /// The window. Default 60 000 ms.
        public var window: Duration
        /// How long an address stays blocked. Default 60 000 ms.
        public var blockDuration: Duration
        /// Addresses tracked at most; the oldest are forgotten first. Default 100 000.
        public var maxAddresses: Int

        /// Creates a configuration with the documented defaults.
        public init(
            maxFailures: Int = 10, window: Duration = .seconds(60), blockDuration: Duration = .seconds(60),
            maxAddresses: Int = 100_000
        ) {
            self.maxFailures = maxFailures
            self.window = window
            self.blockDuration = blockDuration
            self.maxAddresses = maxAddresses
        }
    }

    /// What has been counted (for tests and `/metrics`).
    public struct Statistics: Sendable, Hashable {
        /// Failed attempts.
        public var failures: Int
        /// Attempts refused while blocked.
        public var blocked: Int
    }

    private struct Entry {
        var windowStart: Int64
        var failures: Int
        var blockedUntil: Int64
    }
    private struct State {
        var entries: [String: Entry] = [:]
        var statistics = Statistics(failures: 0, blocked: 0)
    }

    /// The limits in force.
    public let configuration: Configuration
    private let state = Mutex(State())
    private let clock: @Sendable () -> Int64

    /// Creates a limiter; `clock` gives monotonic milliseconds (tests pass their own).
    public init(configuration: Configuration = .init(), clock: (@Sendable () -> Int64)? = nil) {
        self.configuration = configuration
        if let clock {
            self.clock = clock
        } else {
            let nanoseconds = monotonicNanosecondsReader()
            self.clock = { nanoseconds() / 1_000_000 }
        }
    }

    /// How long `address` stays blocked, in ms, or `nil` when it may try. Counts a blocked attempt.
    public func blockedFor(_ address: String, transport: String) -> Int64? {
        let now = clock()
        let wait = state.withLock { s -> Int64? in
            guard let e = s.entries[address], e.blockedUntil > now else { return nil }
            s.statistics.blocked += 1
            return e.blockedUntil - now
        }
        if wait != nil { Counter(label: "iot_auth_blocked_total", dimensions: [("transport", transport)]).increment() }
        return wait
    }

    /// Records a failed attempt from `address`.
    public func recordFailure(_ address: String, transport: String) {
        recordFailure(keys: [address], transport: transport)
    }

    /// Records one failed attempt against each of `keys` (its address and its username), counted once.
    public func recordFailure(keys: [String], transport: String) {
        let now = clock()
        let c = configuration
        state.withLock { s in
            s.statistics.failures += 1
            for address in keys { Self.count(address, in: &s, now: now, configuration: c) }
        }
        Counter(label: "iot_auth_failures_total", dimensions: [("transport", transport)]).increment()
    }

    private static func count(_ address: String, in s: inout State, now: Int64, configuration c: Configuration) {
        if s.entries[address] == nil, s.entries.count >= c.maxAddresses {
            // Full: make room by evicting, among a few sampled entries, one that is not blocked (the one
            // with the fewest failures). A flood of new addresses can never flush the table and with it the
            // blocks in force: when every sampled entry is blocked, the newcomer goes untracked instead
            // (its username's entry still counts it).
            var victim: (key: String, failures: Int)?
            for _ in 0..<16 {
                guard let (key, e) = s.entries.randomElement() else { break }
                if e.blockedUntil > now { continue }
                let live = now - e.windowStart < c.window.inMilliseconds ? e.failures : 0
                if victim == nil || live < victim!.failures { victim = (key, live) }
            }
            guard let victim else { return }
            s.entries[victim.key] = nil
        }
        var e = s.entries[address] ?? Entry(windowStart: now, failures: 0, blockedUntil: 0)
        if now - e.windowStart >= c.window.inMilliseconds {
            e.windowStart = now
            e.failures = 0
        }
        e.failures += 1
        if e.failures >= c.maxFailures {
            e.blockedUntil = now + c.blockDuration.inMilliseconds
            e.failures = 0
            e.windowStart = now
        }
        s.entries[address] = e
    }

    /// Forgets the failures of `address` (a key) after a success.
    public func recordSuccess(_ address: String) {
        state.withLock { s in
            if let e = s.entries[address], e.blockedUntil == 0 || e.blockedUntil <= clock() {
                s.entries[address] = nil
            }
        }
    }

    /// What has been counted so far.
    public var statistics: Statistics { state.withLock { $0.statistics } }
}
