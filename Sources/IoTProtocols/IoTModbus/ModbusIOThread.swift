import Dispatch
@_spi(Internal) internal import IoTCore
import IoTIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Polls on their way from an I/O thread to the ingest task: the register words of every poll one after
/// another, and for each poll its device and where its words start. The ingest task decodes them.
struct ModbusPolledBatch: Sendable {
    var polls: [(poller: ModbusPoller, start: Int)] = []
    var words: [UInt16] = []
}

/// One I/O thread of the Modbus transport. It runs the poll schedule of its devices itself: wait until
/// the next device is due, read it (a blocking libmodbus call), compute the next due time, and on to
/// the next device, with no thread hop per poll and no work per poll but the reads: the words are
/// appended to a batch, and the ingest task decodes them into records (the thread checks only the
/// values that can be malformed, text, so that such a poll fails here). Batches are handed over when
/// the thread is about to wait, or every 64 polls or 5 ms while it has no time to wait. Jobs
/// from `async` code (writes, reads on demand, closing a connection) run between polls, before any due
/// poll.
///
/// Every libmodbus context of the thread's devices is used only on this thread (libmodbus contexts are
/// not thread-safe).
final class ModbusIOThread: Sendable {
    /// A device on the thread's schedule.
    final class Scheduled: Sendable {
        let poller: ModbusPoller
        init(_ poller: ModbusPoller) { self.poller = poller }
    }

    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        var heap = DeadlineHeap<Scheduled>()
        var active: Set<ObjectIdentifier> = []
        var stopped = false

        mutating func nextJob() -> (@Sendable () -> Void)? {
            guard head < jobs.count else { return nil }
            let j = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            return j
        }
    }

    private enum Step {
        case exit
        case job(@Sendable () -> Void)
        case poll(Scheduled, due: Int64)
        case wait(millis: Int64?)
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let clock: any IoTClock
    private let deliver: @Sendable (ModbusPolledBatch) -> Void
    /// The thread's name (`ps -L`, `perf`).
    let name: String
    static let batchRecords = 64
    static let batchMillis: Int64 = 5

    /// Starts the thread; `deliver` receives the batches of polls, on the thread, and must not block.
    init(name: String, clock: any IoTClock, deliver: @escaping @Sendable (ModbusPolledBatch) -> Void) {
        self.name = name
        self.clock = clock
        self.deliver = deliver
        let rc = startDetachedThread(name: name) { [self] in self.loop() }
        precondition(rc == 0, "cannot start the Modbus I/O thread \(name): pthread_create returned \(rc)")
    }

    /// Puts a device on the schedule, first due at `at` (clock ms).
    func schedule(_ item: Scheduled, at: Int64) {
        let added = state.withLock { s -> Bool in
            guard !s.stopped, s.active.insert(ObjectIdentifier(item)).inserted else { return false }
            s.heap.push(at, item)
            return true
        }
        if added { wake.signal() }
    }

    /// Takes a device off the schedule. A poll of it that is running finishes; jobs sent afterwards run
    /// after it.
    func unschedule(_ item: Scheduled) {
        state.withLock { s in
            guard s.active.remove(ObjectIdentifier(item)) != nil else { return }
            s.heap.removeAll { $0 === item }
        }
    }

    /// Stops the thread after the poll or job it runs; queued jobs fail with
    /// ``IoTCore/IoTError/Code/shutdown``.
    func stop() {
        let dropped = state.withLock { s -> [@Sendable () -> Void] in
            s.stopped = true
            let rest = Array(s.jobs[s.head...])
            s.jobs = []
            s.head = 0
            s.heap.removeAll()
            s.active = []
            return rest
        }
        // A dropped job resumes its caller with `shutdown` (see `run`): it sees `stopped`.
        for job in dropped { job() }
        wake.signal()
    }

    /// Runs `body` on the thread, between polls, and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> Result<T, IoTError>) async -> Result<T, IoTError> {
        await withCheckedContinuation { (c: CheckedContinuation<Result<T, IoTError>, Never>) in
            let name = self.name
            let accepted = state.withLock { s -> Bool in
                guard !s.stopped else { return false }
                s.jobs.append {
                    // `stop()` runs dropped jobs on its caller's thread after setting `stopped`.
                    if self.state.withLock({ $0.stopped }) {
                        c.resume(
                            returning: .failure(IoTError(.shutdown, "the \(name) thread stopped before it ran the job"))
                        )
                    } else {
                        c.resume(returning: body())
                    }
                }
                return true
            }
            if accepted {
                wake.signal()
            } else {
                c.resume(returning: .failure(IoTError(.shutdown, "the \(name) thread has stopped")))
            }
        }
    }

    private func loop() {
        var batch = ModbusPolledBatch()
        var batchStarted: Int64 = 0
        func flush() {
            guard !batch.polls.isEmpty else { return }
            let words = batch.words.count
            deliver(batch)
            batch = ModbusPolledBatch()
            batch.polls.reserveCapacity(Self.batchRecords)
            batch.words.reserveCapacity(words)
        }
        while true {
            let now = clock.now()
            let step = state.withLock { s -> Step in
                if s.stopped { return .exit }
                if let job = s.nextJob() { return .job(job) }
                guard let next = s.heap.nextDeadline else { return .wait(millis: nil) }
                guard let due = s.heap.popDue(now) else { return .wait(millis: next - now) }
                return .poll(due.item, due: due.deadline)
            }
            switch step {
            case .exit:
                flush()
                return
            case .job(let job):
                job()
            case .poll(let item, let due):
                let start = batch.words.count
                let (next, polled) = item.poller.pollOnThread(due: due, into: &batch.words)
                if polled {
                    let polledAt = clock.now()
                    if batch.polls.isEmpty { batchStarted = polledAt }
                    batch.polls.append((item.poller, start))
                    if batch.polls.count >= Self.batchRecords || polledAt - batchStarted >= Self.batchMillis { flush() }
                }
                state.withLock { s in
                    guard !s.stopped, s.active.contains(ObjectIdentifier(item)) else { return }
                    s.heap.push(next, item)
                }
            case .wait(let millis):
                flush()
                if let millis {
                    _ = wake.wait(timeout: .now() + .milliseconds(Int(min(millis, 60_000))))
                } else {
                    wake.wait()
                }
            }
        }
    }
}
