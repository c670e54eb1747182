import IoTCore
import Synchronization
import Testing

/// The gateway's credential cache: entries live for the TTL, or as long as the authenticator's revision
/// stays the same and was confirmed less than a TTL ago.
@Suite struct AuthenticationCacheTests {
    static let second: Int64 = 1_000_000_000
    let pump = DeviceIdentity(tenant: "acme", deviceUID: "pump-1")

    /// A hand-moved clock and revision (`nil`: none).
    final class Knobs: Sendable {
        let now = Mutex<Int64>(0)
        let revision: Mutex<UInt64?>
        init(_ revision: UInt64?) { self.revision = Mutex(revision) }
    }

    /// A cache on `knobs`' clock and revision.
    func cache(_ knobs: Knobs) -> AuthenticationCache {
        AuthenticationCache(
            ttlMillis: 1_000, clock: { knobs.now.withLock { $0 } }, revision: { knobs.revision.withLock { $0 } })
    }

    @Test func withoutARevisionAnEntryLivesForTheTTL() async {
        let knobs = Knobs(nil)
        let cache = cache(knobs)
        cache.remember(pump, for: "t", lookedUpAt: cache.now())
        knobs.now.withLock { $0 = Self.second - 1 }
        #expect(cache.identity(for: "t") == pump)
        await cache.readRevision()
        knobs.now.withLock { $0 = Self.second }
        #expect(cache.identity(for: "t") == nil, "expired after the TTL")
    }

    @Test func anUnchangedRevisionKeepsAnEntryAndAChangeDropsItWithinTheTTL() async {
        let knobs = Knobs(7)
        let cache = cache(knobs)
        await cache.readRevision()  // revision 7 seen at 0
        cache.remember(pump, for: "t", lookedUpAt: cache.now())
        for step in 1...20 {
            knobs.now.withLock { $0 = Int64(step) * Self.second / 2 }
            await cache.readRevision()  // confirms 7
            #expect(cache.identity(for: "t") == pump, "still revision 7 after \(step * 500) ms")
        }
        // Revoked at 10 s; the confirmation read at 10 s started before it, so the entry stays usable until
        // 11 s at the latest, and no longer.
        knobs.revision.withLock { $0 = 8 }
        knobs.now.withLock { $0 = 10 * Self.second + Self.second - 1 }
        #expect(cache.identity(for: "t") == pump, "confirmed less than a TTL ago")
        knobs.now.withLock { $0 = 11 * Self.second }
        #expect(cache.identity(for: "t") == nil, "not confirmed for a TTL: looked up again")
        // A lookup that started before revision 8 was read (by the call above, or the one below).
        cache.remember(pump, for: "t", lookedUpAt: 10 * Self.second + Self.second / 2)
        await cache.readRevision()
        knobs.now.withLock { $0 = 13 * Self.second }
        await cache.readRevision()
        #expect(cache.identity(for: "t") == nil, "looked up before revision 8 was read: TTL only")
    }

    @Test func aChangedRevisionDropsEntriesAtOnce() async {
        let knobs = Knobs(1)
        let cache = cache(knobs)
        await cache.readRevision()
        knobs.now.withLock { $0 = 1 }
        cache.remember(pump, for: "t", lookedUpAt: cache.now())
        knobs.now.withLock { $0 = 2 * Self.second }
        await cache.readRevision()
        #expect(cache.identity(for: "t") == pump)
        knobs.revision.withLock { $0 = 2 }
        await cache.readRevision()
        #expect(cache.identity(for: "t") == nil, "revision changed")
    }

    @Test func aRevisionThatCannotBeReadFallsBackToTheTTL() async {
        let knobs = Knobs(1)
        let cache = cache(knobs)
        await cache.readRevision()
        knobs.now.withLock { $0 = 1 }
        cache.remember(pump, for: "t", lookedUpAt: cache.now())
        knobs.revision.withLock { $0 = nil }  // the store is down
        knobs.now.withLock { $0 = Self.second / 2 }
        await cache.readRevision()
        knobs.now.withLock { $0 = 3 * Self.second }
        #expect(cache.identity(for: "t") == nil)
    }

    @Test func identityReadsTheRevisionByItselfOffTheCallersPath() async throws {
        let knobs = Knobs(5)
        let reads = Atomic(0)
        let cache = AuthenticationCache(
            ttlMillis: 1_000, clock: { knobs.now.withLock { $0 } },
            revision: {
                reads.add(1, ordering: .relaxed)
                return knobs.revision.withLock { $0 }
            })
        cache.remember(pump, for: "t", lookedUpAt: 0)
        _ = cache.identity(for: "t")
        for _ in 0..<200 where reads.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(reads.load(ordering: .relaxed) == 1, "one read started by a lookup")
        _ = cache.identity(for: "t")
        try await Task.sleep(for: .milliseconds(50))
        #expect(reads.load(ordering: .relaxed) == 1, "none again within half a TTL")
    }
}
