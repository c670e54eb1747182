import IoTCore
import ServiceLifecycle

/// A scheduler that runs what is due, then sleeps on its clock until its next fire time: the
/// ``StatisticsScheduler`` and the ``ReportScheduler``.
///
/// A change of schedule (a job or report added or removed) cancels ``sleeper``, so the loop looks at the new
/// next fire time at once.
protocol FireScheduler: Actor {
    var clock: any IoTClock { get }
    /// The earliest fire time of anything scheduled, or `nil` when nothing is.
    var nextFireTime: Int64? { get }
    /// The sleep in progress; cancelled to wake the loop early.
    var sleeper: Task<Void, any Error>? { get set }
    /// Runs everything due at the clock's current time.
    func runDue() async
}

extension FireScheduler {
    /// Runs what is due and sleeps until the next fire time (an hour when nothing is scheduled), until cancelled
    /// or gracefully shut down.
    func runFireLoop() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.fireLoop() }
        } catch is CancellationError {}
    }

    private func fireLoop() async throws {
        while !Task.isCancelled {
            await runDue()
            let deadline = nextFireTime ?? clock.now() + 3_600_000
            let task = Task { [clock] in try await clock.sleep(until: deadline) }
            sleeper = task
            await withTaskCancellationHandler {
                _ = try? await task.value
            } onCancel: {
                task.cancel()
            }
            sleeper = nil
        }
        throw CancellationError()
    }
}
