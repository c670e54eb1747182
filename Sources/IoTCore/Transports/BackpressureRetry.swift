/// Runs `attempt`; while it is refused with ``IoTError/Code/backpressure`` (nothing was accepted: the
/// ingestor is starting, or the store is behind), waits the delay the refusal suggests and tries again, for
/// at most `limitMillis` in all. The base transports use it so that what they read is not dropped while
/// the pipeline catches up; they read nothing meanwhile. Every attempt is counted by the ingestor.
///
/// - Returns: the first result that is not a back-pressure refusal, or the last refusal once the limit is
///   reached or the task is cancelled.
func retryingBackpressure<T>(
    limitMillis: Int64, clock: any IoTClock, _ attempt: () async throws(IoTError) -> T
) async -> Result<T, IoTError> {
    var waited: Int64 = 0
    while true {
        let refusal: IoTError
        do {
            return .success(try await attempt())
        } catch {
            refusal = error
        }
        guard refusal.code == .backpressure, waited < limitMillis else { return .failure(refusal) }
        let delay = min(max(refusal.retryAfterMillis ?? 100, 1), limitMillis - waited)
        do {
            try await clock.sleep(forMillis: delay)
        } catch {
            return .failure(refusal)  // cancelled: the transport is stopping
        }
        waited += delay
    }
}
