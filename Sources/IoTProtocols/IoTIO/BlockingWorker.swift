import Dispatch
package import IoTCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One dedicated OS thread that runs blocking C calls (libmodbus) in submission order, so they never park
/// a thread of Swift's cooperative pool. Jobs still queued when their task is cancelled are dropped.
package final class BlockingWorker: Sendable {
    private struct State {
        var jobs: [(id: UInt64, run: @Sendable () -> Void, abandon: @Sendable () -> Void)] = []
        var head = 0
        var nextID: UInt64 = 0
        var stopped = false
    }
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    /// The thread's name (`ps -L`, debuggers).
    package let name: String

    /// Starts the thread.
    package init(name: String) {
        self.name = name
        let rc = startDetachedThread(name: name) { [self] in self.loop() }
        precondition(rc == 0, "cannot start the \(name) thread: pthread_create returned \(rc)")
    }

    /// Stops the thread after the job it runs; queued jobs are dropped (their callers were cancelled or
    /// get ``IoTCore/IoTError/Code/shutdown``).
    package func stop() {
        let dropped = state.withLock { s -> [@Sendable () -> Void] in
            s.stopped = true
            let rest = s.jobs[s.head...].map(\.abandon)
            s.jobs = []
            s.head = 0
            return rest
        }
        for abandon in dropped { abandon() }
        wake.signal()
    }

    /// Runs `body` on the thread and returns its result. Cancelling the calling task drops the job if
    /// it has not started; a started job runs to its end (give it its own timeout).
    package func run<T: Sendable>(_ body: @escaping @Sendable () -> Result<T, IoTError>) async -> Result<T, IoTError> {
        let slot = ResumeSlot<T>()
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result<T, IoTError>, Never>) in
                slot.install(c)
                let accepted = state.withLock { s -> Bool in
                    guard !s.stopped else { return false }
                    let name = self.name
                    s.jobs.append(
                        (
                            id, { slot.resume(body()) },
                            {
                                slot.resume(
                                    .failure(IoTError(.shutdown, "the \(name) thread stopped before it ran the job")))
                            }
                        ))
                    return true
                }
                if accepted {
                    wake.signal()
                } else {
                    slot.resume(.failure(IoTError(.shutdown, "the \(name) thread has stopped")))
                }
            }
        } onCancel: {
            let removed = state.withLock { s -> Bool in
                guard s.head < s.jobs.count, let i = s.jobs[s.head...].firstIndex(where: { $0.id == id }) else {
                    return false
                }
                s.jobs.remove(at: i)
                return true
            }
            if removed { slot.resume(.failure(IoTError(.timeout, "cancelled before the \(name) thread ran it"))) }
        }
    }

    private func loop() {
        while true {
            wake.wait()
            let job = state.withLock { s -> (@Sendable () -> Void)?? in
                if s.stopped { return .some(nil) }
                guard s.head < s.jobs.count else { return nil }
                let j = s.jobs[s.head].run
                s.head += 1
                if s.head > 64 && s.head * 2 > s.jobs.count {
                    s.jobs.removeFirst(s.head)
                    s.head = 0
                }
                return .some(j)
            }
            switch job {
            case .none: continue
            case .some(.none): return
            case .some(.some(let run)): run()
            }
        }
    }
}

/// A continuation resumed exactly once, by whichever side gets there first.
private final class ResumeSlot<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Result<T, IoTError>, Never>?
        var early: Result<T, IoTError>?
        var done = false
    }
    private let state = Mutex(State())

    func install(_ c: CheckedContinuation<Result<T, IoTError>, Never>) {
        let early = state.withLock { s -> Result<T, IoTError>? in
            if let e = s.early {
                s.early = nil
                return e
            }
            s.continuation = c
            return nil
        }
        if let early { c.resume(returning: early) }
    }

    func resume(_ r: Result<T, IoTError>) {
        let c = state.withLock { s -> CheckedContinuation<Result<T, IoTError>, Never>? in
            guard !s.done else { return nil }
            s.done = true
            guard let c = s.continuation else {
                s.early = r
                return nil
            }
            s.continuation = nil
            return c
        }
        c?.resume(returning: r)
    }
}
