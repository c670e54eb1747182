/// A reader of monotonic time in nanoseconds, counted from the moment it is made (`ContinuousClock`): the
/// default clock of the rate limiter, the authentication cache and the failed-attempt limiter, which take
/// their own reader in tests.
package func monotonicNanosecondsReader() -> @Sendable () -> Int64 {
    let epoch = ContinuousClock.now
    return {
        let d = ContinuousClock.now - epoch
        return d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }
}
