/// What a cache knows of the revision of the store behind it (``DeviceAuthenticator/credentialsRevision()``,
/// ``RegistryStore/registryRevision(of:)``): with it, an entry outlives the cache's lifetime for as long as the
/// revision stays the same, and a change still reaches the cache within the lifetime.
///
/// An entry looked up (the lookup *started*) after the current revision value was first read reflects that
/// value. It is vouched for while a read that *started* less than a lifetime ago found the value unchanged.
/// A change is found by the first read after it, and that read starts within half a lifetime, so an entry
/// the change affects is dropped within the lifetime. The owner keeps the watch under its lock, starts a read
/// when ``startRead(now:lifetime:)`` says so (off its callers' path) and hands the result to
/// ``finishRead(_:startedAt:returnedAt:)``. Times are in the owner's clock units.
package struct RevisionWatch: Sendable {
    /// The value last read; `nil` before the first read, or after one that found none or failed.
    private(set) var revision: UInt64?
    /// When ``revision`` was first read (after its read returned).
    private var since = Int64.max
    /// When the last read that found ``revision`` unchanged started.
    private var confirmed = Self.never
    private var reading = false
    private var lastRead = Self.never
    /// Long before any clock reading, and still far from overflowing when subtracted from one.
    private static let never = Int64.min / 4

    package init() {}

    /// One revision made of two counters (a store's two tables, or a store's and an authenticator's own) that
    /// changes whenever either does: both only grow, so the sum with one of them spread by a large odd factor
    /// does not come back to an earlier value in practice.
    package static func combined(_ first: UInt64, _ second: UInt64) -> UInt64 {
        first &+ second &* 0x9E37_79B9_7F4A_7C15
    }

    /// Whether an entry whose lookup started at `lookedUpAt` may be used at `now`, past its lifetime.
    package func vouches(for lookedUpAt: Int64, now: Int64, lifetime: Int64) -> Bool {
        revision != nil && lookedUpAt >= since && now - confirmed < lifetime
    }

    /// Whether to read the revision now: none is under way and the last started half a `lifetime` ago or
    /// more. A `true` answer counts as started: hand its result to ``finishRead(_:startedAt:returnedAt:)``.
    package mutating func startRead(now: Int64, lifetime: Int64, force: Bool = false) -> Bool {
        guard force || (!reading && now - lastRead >= lifetime / 2) else { return false }
        reading = true
        lastRead = now
        return true
    }

    /// Takes in a read that started at `startedAt` and returned `value` (`nil`: none, or it failed) at
    /// `returnedAt`.
    package mutating func finishRead(_ value: UInt64?, startedAt: Int64, returnedAt: Int64) {
        reading = false
        guard let value else {
            // Nothing to vouch with: entries fall back to their lifetime.
            revision = nil
            since = .max
            return
        }
        if value == revision {
            confirmed = max(confirmed, startedAt)
        } else {
            // Changed (or first read): only lookups from now on reflect it. It was read after `startedAt`,
            // so it also counts as confirmed from then.
            revision = value
            since = returnedAt
            confirmed = startedAt
        }
    }
}
