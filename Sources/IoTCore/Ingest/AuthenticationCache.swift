import Synchronization

/// Remembers successful credential lookups, so a device that posts often costs no authenticator lookup.
///
/// Only successes are cached (an unknown credential is looked up every time). An entry is used while one of
/// two things holds:
/// - it is younger than the TTL (a revoked credential keeps working for at most the TTL: keep it at or
///   below one second to honour the ``DeviceAuthenticator`` contract); or
/// - the authenticator keeps a revision (``DeviceAuthenticator/credentialsRevision()``), the entry was
///   looked up after the current revision was read, and a read of the revision that started less than a
///   TTL ago found it unchanged. A revocation changes the revision, so it still takes effect within the
///   TTL, while a device that posts every ten seconds is looked up once instead of every time.
///
/// The revision is read off the caller's path: ``identity(for:)`` starts a read in a task of its own once
/// the last one is half a TTL old, and never waits for it. At most `capacity` credentials are held; when
/// full, those no longer usable are dropped, and if none, everything is.
package final class AuthenticationCache: Sendable {
    private struct Entry {
        var identity: DeviceIdentity
        /// When the lookup that found it started.
        var lookedUpNanos: Int64
    }
    private struct State {
        var entries: [String: Entry] = [:]
        var watch = RevisionWatch()
    }
    private let state = Mutex(State())
    private let ttlNanos: Int64
    private let capacity: Int
    private let clock: @Sendable () -> Int64
    private let revision: (@Sendable () async -> UInt64?)?

    /// A cache whose entries live `ttlMillis`, or as long as `revision` (an authenticator's
    /// ``DeviceAuthenticator/credentialsRevision()``; `nil` for none, or when it fails) stays the same.
    package init(
        ttlMillis: Int64, capacity: Int = 100_000, clock: (@Sendable () -> Int64)? = nil,
        revision: (@Sendable () async -> UInt64?)? = nil
    ) {
        self.ttlNanos = ttlMillis * 1_000_000
        self.capacity = max(1, capacity)
        self.clock = clock ?? monotonicNanosecondsReader()
        self.revision = revision
    }

    /// The clock reading to pass to ``remember(_:for:lookedUpAt:)``: take it before the lookup starts.
    package func now() -> Int64 { clock() }

    /// The cached identity of `token`, if it may still be used.
    package func identity(for token: String) -> DeviceIdentity? {
        let now = clock()
        let (found, read) = state.withLock { s -> (DeviceIdentity?, Bool) in
            let read = revision != nil && s.watch.startRead(now: now, lifetime: ttlNanos)
            guard let entry = s.entries[token] else { return (nil, read) }
            if usable(entry, s, now: now) { return (entry.identity, read) }
            s.entries[token] = nil
            return (nil, read)
        }
        if read { Task { await readRevision(startedAt: now) } }
        return found
    }

    /// Remembers a successful lookup that started at `lookedUpAt` (``now()``).
    package func remember(_ identity: DeviceIdentity, for token: String, lookedUpAt: Int64) {
        let now = clock()
        state.withLock { s in
            if s.entries.count >= capacity, s.entries[token] == nil {
                s.entries = s.entries.filter { usable($0.value, s, now: now) }
                if s.entries.count >= capacity { s.entries.removeAll(keepingCapacity: true) }
            }
            s.entries[token] = Entry(identity: identity, lookedUpNanos: lookedUpAt)
        }
    }

    /// Reads the revision now and waits for it (tests; ``identity(for:)`` does it by itself).
    package func readRevision() async {
        let now = clock()
        state.withLock { _ = $0.watch.startRead(now: now, lifetime: ttlNanos, force: true) }
        await readRevision(startedAt: now)
    }

    /// Credentials held (for tests).
    package var count: Int { state.withLock { $0.entries.count } }

    private func usable(_ entry: Entry, _ s: State, now: Int64) -> Bool {
        now - entry.lookedUpNanos < ttlNanos || s.watch.vouches(for: entry.lookedUpNanos, now: now, lifetime: ttlNanos)
    }

    private func readRevision(startedAt: Int64) async {
        let value = await revision?()
        let returned = clock()
        state.withLock { $0.watch.finishRead(value, startedAt: startedAt, returnedAt: returned) }
    }
}
