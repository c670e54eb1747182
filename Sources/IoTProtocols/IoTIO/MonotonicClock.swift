import Dispatch

/// Monotonic milliseconds.
package func monotonicMillis() -> Int64 {
    Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
}
