internal import IoTCore
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A polled record and its device.
typealias ModbusPolled = (identity: DeviceIdentity, record: DeviceRecord)

/// One I/O thread of the Modbus transport. It runs the poll schedule of its devices itself: wait until
/// the next device is due, read it (a blocking libmodbus call), decode, compute the next due time, and
/// on to the next device, with no thread hop per poll. Records are handed over in batches: when the
/// thread is about to wait, or every 64 records or 5 ms while it has no time to wait. Jobs
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

    private struct Due {
        var at: Int64
        var order: UInt64
        var item: Scheduled
        func precedes(_ o: Due) -> Bool { (at, order) < (o.at, o.order) }
    }

    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        var heap: [Due] = []
        var active: Set<ObjectIdentifier> = []
        var order: UInt64 = 0
        var stopped = false

        mutating func push(_ d: Due) {
            heap.append(d)
            var i = heap.count - 1
            while i > 0 {
                let p = (i - 1) / 2
                guard heap[i].precedes(heap[p]) else { break }
                heap.swapAt(i, p)
                i = p
            }
        }

        mutating func popMin() -> Due {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var i = 0
                while true {
                    let l = 2 * i + 1
                    let r = l + 1
                    var m = i
                    if l < heap.count, heap[l].precedes(heap[m]) { m = l }
                    if r < heap.count, heap[r].precedes(heap[m]) { m = r }
                    if m == i { break }
                    heap.swapAt(i, m)
                    i = m
                }
            }
            return top
        }

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
    private let deliver: @Sendable ([ModbusPolled]) -> Void
    /// The thread's name (`ps -L`, `perf`).
    let name: String
    static let batchRecords = 64
    static let batchMillis: Int64 = 5

    /// Starts the thread; `deliver` receives the polled records, on the thread, and must not block.
    init(name: String, clock: any IoTClock, deliver: @escaping @Sendable ([ModbusPolled]) -> Void) {
        self.name = name
        self.clock = clock
        self.deliver = deliver
        let body = Unmanaged.passRetained(
            ModbusThreadBody { [self] in
                Thread.current.name = String(name.prefix(15))  // pthread_setname_np: `ps -L`, `perf`
                self.loop()
            })
        var tid = pthread_t()
        let rc = pthread_create(
            &tid, nil,
            { arg in
                let body = Unmanaged<ModbusThreadBody>.fromOpaque(arg!).takeRetainedValue()
                body.run()
                return nil
            }, body.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(tid)
    }

    /// Puts a device on the schedule, first due at `at` (clock ms).
    func schedule(_ item: Scheduled, at: Int64) {
        let added = state.withLock { s -> Bool in
            guard !s.stopped, s.active.insert(ObjectIdentifier(item)).inserted else { return false }
            s.order += 1
            s.push(Due(at: at, order: s.order, item: item))
            return true
        }
        if added { wake.signal() }
    }

    /// Takes a device off the schedule. A poll of it that is running finishes; jobs sent afterwards run
    /// after it.
    func unschedule(_ item: Scheduled) {
        state.withLock { s in
            guard s.active.remove(ObjectIdentifier(item)) != nil else { return }
            s.heap.removeAll { $0.item === item }
            // Restore the heap property after the removal.
            let rest = s.heap
            s.heap = []
            for d in rest { s.push(d) }
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
            s.heap = []
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
                        c.resume(returning: .failure(IoTError(.shutdown, "the \(name) thread stopped before it ran the job")))
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
        var batch: [ModbusPolled] = []
        var batchStarted: Int64 = 0
        func flush() {
            guard !batch.isEmpty else { return }
            deliver(batch)
            batch.removeAll(keepingCapacity: true)
        }
        while true {
            let now = clock.now()
            let step = state.withLock { s -> Step in
                if s.stopped { return .exit }
                if let job = s.nextJob() { return .job(job) }
                guard let top = s.heap.first else { return .wait(millis: nil) }
                guard top.at <= now else { return .wait(millis: top.at - now) }
                let due = s.popMin()
                return .poll(due.item, due: due.at)
            }
            switch step {
            case .exit:
                flush()
                return
            case .job(let job):
                job()
            case .poll(let item, let due):
                let (next, record) = item.poller.pollOnThread(due: due)
                if let record {
                    let polledAt = clock.now()
                    if batch.isEmpty { batchStarted = polledAt }
                    batch.append((item.poller.identity, record))
                    if batch.count >= Self.batchRecords || polledAt - batchStarted >= Self.batchMillis { flush() }
                }
                state.withLock { s in
                    guard !s.stopped, s.active.contains(ObjectIdentifier(item)) else { return }
                    s.order += 1
                    s.push(Due(at: next, order: s.order, item: item))
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

private final class ModbusThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
