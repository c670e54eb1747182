import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Dedicated OS threads that share one queue of blocking C calls (libcurl transfers), started on demand
/// up to a maximum and kept for reuse.
///
/// Why not a `DispatchQueue`: on Linux, Swift's cooperative pool *is* libdispatch's global root queue
/// (one thread per CPU), and every `DispatchQueue` without a dedicated target also drains on it. A
/// blocking call there parks a thread the async code needs; libdispatch adds a thread only when its
/// once-a-second monitor sees the pool stalled. Measured with the notify benchmark (2 CPUs, 8 webhook
/// lanes, the sink in the same process): deliveries came in bursts one second apart and the outbox
/// reached 30–120 notifications/s; on these threads it keeps pace with direct POSTs.
package final class BlockingThreadPool: Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        var threads = 0
        var idle = 0
        /// Jobs a thread has taken and not finished.
        var running = 0
    }
    private let state = Mutex(State())
    private let condition = PthreadCondition()
    /// What the threads are for (in messages).
    package let name: String
    /// Threads started at most; jobs beyond them wait in order.
    package let maxThreads: Int
    /// Jobs waiting at most (beyond those running); `nil`: no limit.
    package let maxQueued: Int?

    package init(name: String, maxThreads: Int, maxQueued: Int? = nil) {
        self.name = name
        self.maxThreads = max(1, maxThreads)
        self.maxQueued = maxQueued
    }

    /// Runs `body` on one of the threads and returns its result.
    package func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            _ = submit {
                let value = body()
                self.finished()
                c.resume(returning: value)
            }
        }
    }

    /// Runs `body` on one of the threads and returns its result, or `nil` at once (nothing run) when
    /// ``maxQueued`` jobs are already waiting.
    package func tryRun<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T? {
        await withCheckedContinuation { (c: CheckedContinuation<T?, Never>) in
            let accepted = submit {
                let value = body()
                self.finished()
                c.resume(returning: value)
            }
            if !accepted { c.resume(returning: nil) }
        }
    }

    /// Jobs waiting for a thread now.
    package var queued: Int { state.withLock { $0.jobs.count - $0.head } }

    /// Queues `job`; `false` when the queue is full (the job is dropped).
    private func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        var accepted = true
        let startThread = condition.locked(signal: true) {
            state.withLock { s -> Bool in
                // Taken or waiting: at most one per thread, plus maxQueued.
                if let maxQueued, s.jobs.count - s.head + s.running >= maxThreads + maxQueued {
                    accepted = false
                    return false
                }
                s.jobs.append(job)
                guard s.jobs.count - s.head > s.idle, s.threads < maxThreads else { return false }
                s.threads += 1
                return true
            }
        }
        if startThread { spawn() }
        return accepted
    }

    private func spawn() {
        let rc = startDetachedThread(name: name) { [self] in self.loop() }
        precondition(rc == 0, "cannot start a \(name) thread: pthread_create returned \(rc)")
    }

    private func loop() {
        while true {
            let job = condition.waitUntil {
                state.withLock { s -> (@Sendable () -> Void)? in
                    guard s.head < s.jobs.count else { return nil }
                    let j = s.jobs[s.head]
                    s.head += 1
                    s.running += 1
                    if s.head == s.jobs.count {
                        s.jobs.removeAll(keepingCapacity: true)
                        s.head = 0
                    }
                    return j
                }
            } waiting: { waiting in
                state.withLock { $0.idle += waiting ? 1 : -1 }
            }
            job()
        }
    }

    /// A job's work is done: its place is free before its caller resumes (and perhaps submits again).
    private func finished() {
        state.withLock { $0.running -= 1 }
    }
}

/// A pthread mutex and condition variable: the threads of ``BlockingThreadPool`` sleep on it.
/// `@unchecked Sendable`: the pthread objects are made for use from many threads and never move
/// (they are allocated once and freed in `deinit`).
private final class PthreadCondition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    /// Runs `body` under the mutex, then wakes one waiter if `signal`.
    func locked<T>(signal: Bool, _ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        let r = body()
        if signal { pthread_cond_signal(cond) }
        pthread_mutex_unlock(mutex)
        return r
    }

    /// Calls `take` under the mutex until it returns a value, sleeping between tries; `waiting(true)`
    /// and `waiting(false)` bracket each sleep.
    func waitUntil<T>(_ take: () -> T?, waiting: (Bool) -> Void) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if let v = take() { return v }
            waiting(true)
            pthread_cond_wait(cond, mutex)
            waiting(false)
        }
    }
}
