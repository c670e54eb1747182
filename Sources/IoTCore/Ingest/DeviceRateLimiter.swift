import Synchronization

/// Token buckets per device for a ``RateLimit``: cheap (one short lock per message, on one of 16
/// shards) and bounded in memory.
///
/// A device idle for the longest window has full buckets, which is the same as having no entry, so such
/// entries are swept away. Each shard holds at most `maxDevices / 16` entries; when a shard is full of
/// active devices, an arbitrary entry is evicted (that device briefly gets a fresh allowance): memory
/// stays bounded even under a flood of distinct devices.
final class DeviceRateLimiter: Sendable {
    private struct Entry {
        var tokens: [Double]
        var lastNanos: Int64
    }
    private struct Shard {
        var entries: [DeviceIdentity: Entry] = [:]
        var lastSweepNanos: Int64 = 0
    }
    /// A `Mutex` cannot live in an array; a box can.
    private final class LockedShard: Sendable {
        let mutex = Mutex(Shard())
    }

    private static let shardCount = 16
    let limit: RateLimit
    private let capacities: [Double]
    /// Tokens per nanosecond, per rule.
    private let rates: [Double]
    private let idleNanos: Int64
    private let maxPerShard: Int
    private let shards: [LockedShard]
    private let clock: @Sendable () -> Int64

    /// - Parameters:
    ///   - maxDevices: devices tracked at most (spread over the shards).
    ///   - clock: monotonic nanoseconds; the default reads `ContinuousClock`.
    init(limit: RateLimit, maxDevices: Int = 100_000, clock: (@Sendable () -> Int64)? = nil) {
        self.limit = limit
        self.capacities = limit.rules.map { Double($0.count) }
        self.rates = limit.rules.map { Double($0.count) / (Double($0.seconds) * 1e9) }
        self.idleNanos = Int64(limit.longestWindowSeconds) * 1_000_000_000
        self.maxPerShard = max(1, maxDevices / Self.shardCount)
        self.shards = (0..<Self.shardCount).map { _ in LockedShard() }
        self.clock = clock ?? monotonicNanosecondsReader()
    }

    /// Takes one token from every bucket of `device`; returns `nil` when the message may pass, or how
    /// many milliseconds to wait (at least 1) before the next one can.
    func acquire(_ device: DeviceIdentity) -> Int64? {
        let now = clock()
        var hasher = Hasher()
        hasher.combine(device)
        let index = Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))
        return shards[index].mutex.withLock { shard -> Int64? in
            if shard.entries[device] == nil {
                sweep(&shard, now: now)
            }
            var entry = shard.entries[device] ?? Entry(tokens: capacities, lastNanos: now)
            let elapsed = Double(max(0, now - entry.lastNanos))
            var waitNanos = 0.0
            for i in entry.tokens.indices {
                entry.tokens[i] = min(capacities[i], entry.tokens[i] + elapsed * rates[i])
                if entry.tokens[i] < 1 { waitNanos = max(waitNanos, (1 - entry.tokens[i]) / rates[i]) }
            }
            entry.lastNanos = now
            if waitNanos == 0 {
                for i in entry.tokens.indices { entry.tokens[i] -= 1 }
            }
            shard.entries[device] = entry
            return waitNanos == 0 ? nil : max(1, Int64((waitNanos / 1e6).rounded(.up)))
        }
    }

    /// Devices currently tracked (for tests).
    var trackedDevices: Int { shards.reduce(0) { $0 + $1.mutex.withLock { $0.entries.count } } }

    private func sweep(_ shard: inout Shard, now: Int64) {
        let full = shard.entries.count >= maxPerShard
        guard full || now - shard.lastSweepNanos >= idleNanos else { return }
        shard.lastSweepNanos = now
        shard.entries = shard.entries.filter { now - $0.value.lastNanos < idleNanos }
        if shard.entries.count >= maxPerShard, let victim = shard.entries.first?.key {
            shard.entries[victim] = nil
        }
    }
}
