import Synchronization

/// Remembers successful token lookups for a short time, so a device that posts often costs one
/// authenticator lookup per TTL instead of one per request.
///
/// Only successes are cached (an unknown token is looked up every time), and a revoked token keeps
/// working for at most the TTL: keep it at or below one second to honour the ``DeviceAuthenticator``
/// contract. At most `capacity` tokens are held; when full, expired entries are dropped, and if none
/// expired, everything is.
package final class AuthenticationCache: Sendable {
    private struct Entry {
        var identity: DeviceIdentity
        var expiresNanos: Int64
    }
    private let entries = Mutex<[String: Entry]>([:])
    private let ttlNanos: Int64
    private let capacity: Int
    private let clock: @Sendable () -> Int64

    package init(ttlMillis: Int64, capacity: Int = 100_000, clock: (@Sendable () -> Int64)? = nil) {
        self.ttlNanos = ttlMillis * 1_000_000
        self.capacity = max(1, capacity)
        self.clock = clock ?? monotonicNanosecondsReader()
    }

    /// The cached identity of `token`, if it has not expired.
    package func identity(for token: String) -> DeviceIdentity? {
        let now = clock()
        return entries.withLock { dict in
            guard let entry = dict[token] else { return nil }
            if entry.expiresNanos > now { return entry.identity }
            dict[token] = nil
            return nil
        }
    }

    /// Remembers a successful lookup.
    package func remember(_ identity: DeviceIdentity, for token: String) {
        let now = clock()
        entries.withLock { dict in
            if dict.count >= capacity, dict[token] == nil {
                dict = dict.filter { $0.value.expiresNanos > now }
                if dict.count >= capacity { dict.removeAll(keepingCapacity: true) }
            }
            dict[token] = Entry(identity: identity, expiresNanos: now + ttlNanos)
        }
    }

    /// Tokens held (for tests).
    package var count: Int { entries.withLock { $0.count } }
}
