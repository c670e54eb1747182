internal import CIoTLinux
internal import CIoTMosquitto
import Dispatch
import Glibc
import IoTIO
import Synchronization

/// A small, fixed set of threads that drives any number of ``MQTTClient``s with `epoll`.
///
/// libmosquitto's own `mosquitto_loop_start` runs one thread per client and `mosquitto_loop` waits with
/// `select`, which stops at 1 024 descriptors. A group instead runs `threads` loops; each loop waits on
/// its own `epoll` set over the sockets of the clients placed on it (`mosquitto_socket`) and calls
/// `mosquitto_loop_read`, `mosquitto_loop_write` and `mosquitto_loop_misc` itself. A new client goes to
/// the loop with the fewest clients.
///
/// Message handlers run on a loop thread, synchronously: a slow handler delays the other clients of the
/// same loop (and, for ingest, pushes back on the broker, which is the point). Never block a loop thread
/// on something that needs the same loop.
///
/// ```swift
/// let group = MQTTEventLoopGroup(threads: 2)
/// let client = try MQTTClient(configuration: .init(host: "127.0.0.1", port: 1883, clientID: "iotd-1"), group: group)
/// client.start()
/// ```
public final class MQTTEventLoopGroup: Sendable {
    let loops: [MQTTEventLoop]
    /// Whether the group's clients may connect: open unless a lease closes it (see ``MQTTConnectGate``).
    public let gate: MQTTConnectGate

    /// Starts `threads` loop threads (at least one). They run until ``shutdown()``.
    public init(threads: Int = 2, name: String = "mqtt") {
        let gate = MQTTConnectGate()
        self.gate = gate
        loops = (0..<max(1, threads)).map { MQTTEventLoop(name: "\(name)-\($0)", gate: gate) }
    }

    /// How many loop threads the group runs.
    public var threadCount: Int { loops.count }

    /// How many clients exist on the group's loops (created and not yet released).
    public var clientCount: Int { loops.reduce(0) { $0 + $1.clientCount.load(ordering: .relaxed) } }

    /// The loop with the fewest clients; the count is taken at once, so concurrent placements spread.
    func loopForNewClient() -> MQTTEventLoop {
        let loop = loops.min { $0.clientCount.load(ordering: .relaxed) < $1.clientCount.load(ordering: .relaxed) }!
        loop.clientCount.add(1, ordering: .relaxed)
        return loop
    }

    /// Stops the loop threads after every client placed on them has been stopped, and waits for them.
    ///
    /// Clients still running are closed without a DISCONNECT (the broker keeps their sessions).
    public func shutdown() {
        for loop in loops { loop.stop() }
    }

    /// ``shutdown()`` for `async` callers: the wait for the loop threads happens on a thread of its own, so
    /// no thread of Swift's cooperative pool blocks on it. A loop thread may be inside a message callback
    /// that waits for a task (a device's first message is resolved on one), and on a small machine that
    /// task could otherwise find every pool thread blocked in a shutdown.
    public func shutdownGracefully() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let rc = startDetachedThread(name: "mqtt-shutdown") {
                self.shutdown()
                c.resume()
            }
            if rc != 0 {  // no thread to spare: wait here
                shutdown()
                c.resume()
            }
        }
    }
}

/// One loop thread with its `epoll` set.
///
/// `@unchecked Sendable`: `epfd` and `wakeFD` are immutable; `tasks` is guarded by a mutex; `members`
/// and the loop state of every member client are touched only on the loop thread (``run()`` and the
/// tasks it runs), which is the proof the compiler cannot see.
final class MQTTEventLoop: @unchecked Sendable {
    let epfd: Int32
    let wakeFD: Int32
    let name: String
    let clientCount = Atomic<Int>(0)
    private let tasks = Mutex<[@Sendable () -> Void]>([])
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let threadID = Atomic<UInt>(0)
    private let stopped = Atomic<Bool>(false)
    /// Loop thread only.
    private var members: [UInt64: MQTTClient] = [:]
    /// The interval of `mosquitto_loop_misc` (keep-alive) and reconnect checks, in ms.
    static let tickMillis: Int64 = 100

    /// The group's gate.
    let gate: MQTTConnectGate

    init(name: String, gate: MQTTConnectGate) {
        self.name = name
        self.gate = gate
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = 0
        _ = epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev)
        let rc = startDetachedThread(name: name) { [self] in self.run() }
        precondition(rc == 0, "cannot start the MQTT loop thread \(name): pthread_create returned \(rc)")
    }

    /// Whether the caller runs on this loop's thread.
    var inLoop: Bool { UInt(pthread_self()) == threadID.load(ordering: .acquiring) }

    /// Runs `task` on the loop thread, after the events at hand.
    func execute(_ task: @escaping @Sendable () -> Void) {
        tasks.withLock { $0.append(task) }
        wake()
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Loop thread only: adds a client to the loop.
    func add(_ client: MQTTClient) { members[client.id] = client }

    /// Loop thread only: removes a client. (`clientCount` drops when the client is released.)
    func remove(_ client: MQTTClient) {
        members.removeValue(forKey: client.id)
    }

    /// Loop thread only: registers, changes or removes the socket of a client in the epoll set; a client
    /// whose reading is paused is watched for writes and hang-ups only.
    func watch(fd: Int32, client: UInt64, writable: Bool, readable: Bool = true, operation: Int32) {
        var ev = epoll_event()
        ev.events = (readable ? EPOLLIN.rawValue : 0) | EPOLLRDHUP.rawValue | (writable ? EPOLLOUT.rawValue : 0)
        ev.data.u64 = client
        _ = epoll_ctl(epfd, operation, fd, &ev)
    }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        stopping.store(true, ordering: .releasing)
        wake()
        if !inLoop { finished.wait() }
    }

    private func run() {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        var events = [epoll_event](repeating: epoll_event(), count: 512)
        var lastTick = MQTTClock.millis()
        while true {
            let now0 = MQTTClock.millis()
            let timeout = Int32(max(0, min(Self.tickMillis, Self.tickMillis - (now0 - lastTick))))
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, Int32($0.count), timeout) }
            if n > 0 {
                for i in 0..<Int(n) {
                    let id = events[i].data.u64
                    if id == 0 {
                        var value: UInt64 = 0
                        _ = read(wakeFD, &value, 8)
                        continue
                    }
                    members[id]?.handle(events: events[i].events)
                }
            }
            let pending = tasks.withLock { t -> [@Sendable () -> Void] in
                defer { t.removeAll(keepingCapacity: true) }
                return t
            }
            for task in pending { task() }
            let now = MQTTClock.millis()
            if now - lastTick >= Self.tickMillis {
                lastTick = now
                for client in members.values { client.tick(now: now) }
            }
            if stopping.load(ordering: .acquiring) {
                for client in members.values { client.abandon() }
                members.removeAll()
                break
            }
        }
        close(epfd)
        close(wakeFD)
        finished.signal()
    }
}

/// Whether the clients of an ``MQTTEventLoopGroup`` may be connected now: a lease that an owner renews.
///
/// Open by default, for good. Several instances that share MQTT clients (IoTCluster) hold each client's
/// broker session by a lease on a coordination server: the gate is then open only until the lease's local
/// deadline (``open(until:)``), taken before the lease was renewed, so it closes no later than the lease
/// expires at the server. While it is closed, no client of the group connects or reconnects, and a connected
/// client drops its connection at its next tick (within 100 ms): an instance that was paused (`SIGSTOP`) past
/// its lease cannot take back a session that another instance was given meanwhile.
public final class MQTTConnectGate: Sendable {
    private let deadline = Atomic<Int64>(Int64.max)

    /// An open gate.
    public init() {}

    /// Keeps the gate open until `millis` on ``now`` (a monotonic clock in milliseconds); a time in the past
    /// closes it.
    public func open(until millis: Int64) { deadline.store(millis, ordering: .releasing) }

    /// Closes the gate until the next ``open(until:)``.
    public func close() { deadline.store(Int64.min, ordering: .releasing) }

    /// Whether clients may be connected at `now` (``now``).
    public func isOpen(at now: Int64 = MQTTConnectGate.now) -> Bool { now < deadline.load(ordering: .acquiring) }

    /// The monotonic clock the gate runs on, in milliseconds.
    public static var now: Int64 { MQTTClock.millis() }
}

/// Monotonic milliseconds.
enum MQTTClock {
    static func millis() -> Int64 {
        Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
    }
}
