public import IoTCore
import Synchronization

/// A clock that moves only when told to: drive an hour of rule time in a millisecond.
///
/// ```swift
/// let clock = ManualClock(now: 1_700_000_000_000)
/// async let woke: Void = clock.sleep(until: clock.now() + 60_000)
/// clock.advance(byMillis: 60_000)   // resumes the sleeper
/// ```
public final class ManualClock: IoTClock {
    private struct Sleeper {
        let id: UInt64
        let deadline: Int64
        let continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var now: Int64
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
    }
    private let state: Mutex<State>

    /// Creates a clock showing `now` (UTC ms).
    public init(now: Int64 = 1_700_000_000_000) {
        state = Mutex(State(now: now))
    }

    public func now() -> Int64 { state.withLock { $0.now } }

    /// How many tasks are sleeping on this clock: wait for it to reach a number before advancing.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Moves time forward by `millis` and resumes every sleeper whose deadline has come.
    public func advance(byMillis millis: Int64) {
        precondition(millis >= 0, "ManualClock cannot go backwards")
        set(to: now() + millis)
    }

    /// Moves time forward to `time` (no-op if it is in the past) and resumes sleepers that are due.
    public func advance(to time: Int64) { set(to: time) }

    private func set(to time: Int64) {
        let due: [Sleeper] = state.withLock { s in
            if time > s.now { s.now = time }
            let now = s.now
            let due = s.sleepers.filter { $0.deadline <= now }
            s.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due.sorted(by: { $0.deadline < $1.deadline }) { sleeper.continuation.resume() }
    }

    public func sleep(until deadline: Int64) async throws {
        try Task.checkCancellation()
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { s -> Bool in
                    if deadline <= s.now { return true }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let cancelled = state.withLock { s -> Sleeper? in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i)
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }
}
