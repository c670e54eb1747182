import Dispatch
import IoTCore

#if canImport(Glibc)
    import Glibc
#endif

/// One script worker child process (`iot-js-worker`, or `python3` running ``PythonWorkerSource``) and the
/// parent's end of its socket.
///
/// `@unchecked Sendable`: a worker is used by one caller at a time (taken from and returned to the
/// engine's ``BlockingPool``, whose mutex orders the hand-over); `fd`, `loaded` and `alive` are only
/// touched by that caller. The process is killed and reaped exactly once (``terminate()`` is idempotent).
final class WorkerProcess: @unchecked Sendable {
    let pid: pid_t
    private let fd: Int32
    /// What the worker is called in messages ("the JavaScript worker").
    let name: String
    private(set) var alive = true
    /// Scripts loaded in this worker.
    var loaded: Set<UInt64> = []
    var retiredGeneration = 0

    private init(pid: pid_t, fd: Int32, name: String) {
        self.pid = pid
        self.fd = fd
        self.name = name
    }

    deinit { terminate() }

    /// Starts `path arguments… --memory-limit N --parent PID` with a socket pair on its stdin and stdout and an
    /// empty environment; `name` is what messages call it ("the JavaScript worker").
    static func spawn(path: String, arguments: [String] = [], memoryLimit: Int, name: String) throws(IoTError)
        -> WorkerProcess
    {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw IoTError(
                .unavailable, "cannot create a socket pair for \(name)", nativeCode: errno, domain: .posix
            )
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        let args = [path] + arguments + ["--memory-limit", String(memoryLimit), "--parent", String(getpid())]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var envp: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, &argv, &envp)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw IoTError(.unavailable, "cannot start \(name) '\(path)'", nativeCode: rc, domain: .posix)
        }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        let worker = WorkerProcess(pid: pid, fd: fds[0], name: name)
        // Wait for the worker's ready byte, with a start-up allowance of its own (a loaded machine can
        // take far longer than a call's time limit to start a process).
        var ready: [UInt8] = [0]
        do {
            try worker.receive(
                into: &ready, deadline: monotonicNanoseconds() + startupLimit.inNanoseconds,
                what: "starting \(name)")
        } catch {
            throw IoTError(.unavailable, error.message)
        }
        guard ready[0] == WorkerStatus.ready.rawValue else {
            worker.terminate()
            throw IoTError(.unavailable, "\(name) '\(path)' did not start properly")
        }
        return worker
    }

    /// How long a new worker may take to start.
    static let startupLimit: Duration = .seconds(10)

    /// Kills the worker (SIGKILL), closes the socket and reaps the process: at once, or with
    /// `reapLater` on a Dispatch queue, so that a caller whose call timed out gets its error without
    /// waiting for the kernel to finish the process (which takes a while on a loaded machine).
    /// Safe to call more than once.
    func terminate(reapLater: Bool = false) {
        guard alive else { return }
        alive = false
        kill(pid, SIGKILL)
        close(fd)
        let pid = self.pid
        if reapLater {
            DispatchQueue.global().async { Self.reap(pid) }
        } else {
            Self.reap(pid)
        }
    }

    private static func reap(_ pid: pid_t) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }

    /// Sends a request frame and waits for the response body until `deadline` (CLOCK_MONOTONIC ns).
    ///
    /// Blocking syscalls on the calling thread (`poll`, `send`, `recv`), at most until the deadline. On
    /// timeout the worker is killed and the call fails with ``IoTError/Code/timeout``; if the worker died
    /// the call fails with ``IoTError/Code/script``. Either way ``alive`` is then false.
    func roundTrip(_ frame: [UInt8], deadline: Int64, what: String) throws(IoTError) -> [UInt8] {
        guard alive else { throw IoTError(.script, "\(name) is gone") }
        try sendAll(frame, deadline: deadline, what: what)
        var header = [UInt8](repeating: 0, count: 4)
        try receive(into: &header, deadline: deadline, what: what)
        let n = Int(UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24)
        var body = [UInt8](repeating: 0, count: n)
        try receive(into: &body, deadline: deadline, what: what)
        return body
    }

    private func wait(for events: Int16, deadline: Int64, what: String) throws(IoTError) {
        while true {
            let remaining = deadline - monotonicNanoseconds()
            if remaining <= 0 {
                terminate(reapLater: true)
                throw IoTError(.timeout, "\(what) exceeded its time limit; the worker was killed")
            }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, Int32(min(Int64(Int32.max), (remaining + 999_999) / 1_000_000)))
            if rc > 0 { return }
            if rc < 0 && errno != EINTR { throw gone(what) }
        }
    }

    private func gone(_ what: String) -> IoTError {
        terminate()
        return IoTError(
            .script, "\(what) failed: \(name) died (memory exhausted or a fatal error); it is replaced")
    }

    private func sendAll(_ bytes: [UInt8], deadline: Int64, what: String) throws(IoTError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(for: Int16(POLLOUT), deadline: deadline, what: what)
            } else {
                throw gone(what)
            }
        }
    }

    fileprivate func receive(into buffer: inout [UInt8], deadline: Int64, what: String) throws(IoTError) {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + offset, $0.count - offset, 0) }
            if n > 0 {
                offset += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(for: Int16(POLLIN), deadline: deadline, what: what)
            } else {
                throw gone(what)
            }
        }
    }
}

/// A monotonic clock in nanoseconds (CLOCK_MONOTONIC, through Dispatch).
func monotonicNanoseconds() -> Int64 {
    Int64(truncatingIfNeeded: DispatchTime.now().uptimeNanoseconds)
}
