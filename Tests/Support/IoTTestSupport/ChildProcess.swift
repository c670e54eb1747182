#if canImport(Glibc)
    public import Glibc
#endif

/// A child process for tests that need a real peer or a real crash: started with a pipe on its
/// standard output, stopped by its own PID (at the latest when the value is released).
///
/// ```swift
/// let child = try ChildProcess(["/usr/bin/env", "iotd", "serve", "--config", path])
/// while let line = child.readLine(), !line.contains("serving") {}
/// child.stop(signal: SIGKILL)
/// ```
public final class ChildProcess {
    /// Could not start the process.
    public struct Failure: Error, CustomStringConvertible {
        /// Why.
        public var description: String
    }

    /// The child's process id.
    public let pid: Int32
    private let stdoutFD: Int32
    private var buffer: [UInt8] = []
    private var reaped = false
    private var exitStatus: Int32 = 0

    /// Starts `arguments[0]` (an absolute path) with `arguments`; stdout is readable with ``readLine()``,
    /// stderr is inherited. `environment` entries (`NAME=value`) are added to the current environment.
    public init(_ arguments: [String], environment: [String] = []) throws {
        var fds: [Int32] = [0, 0]
        // Close-on-exec: other children started meanwhile must not hold this pipe open (a reader would
        // then never see end of file). The dup2 onto the child's stdout clears the flag there.
        guard pipe(&fds) == 0 else { throw Failure(description: "pipe failed: \(String(cString: strerror(errno)))") }
        // Close-on-exec: a child started at the same moment by another test must not inherit this pipe, or
        // readLine() here would not see end of file until that other child exits. dup2 onto the child's
        // stdout clears the flag for the one descriptor this child should have.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var env: [UnsafeMutablePointer<CChar>?] = []
        var e = environ
        while let p = e.pointee {
            env.append(strdup(p))
            e += 1
        }
        env += environment.map { strdup($0) }
        env.append(nil)
        defer {
            for p in argv { free(p) }
            for p in env { free(p) }
        }
        // The child starts with no blocked signals and default handlers: the spawning thread may be one of
        // the runtime's worker threads, which block signals, and a blocked SIGTERM would make `stop()` hang.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: Int32 = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, env)
        posix_spawnattr_destroy(&attributes)
        posix_spawn_file_actions_destroy(&actions)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw Failure(description: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        self.stdoutFD = fds[0]
    }

    /// The next complete line of the child's stdout, or `nil` at end of file (the child closed it or
    /// exited) or when no line arrives within `timeoutSeconds`. The timeout turns a peer that hangs into a
    /// failing test instead of a test run that never ends; it is reported on stderr with the child's PID.
    /// An unterminated last line is dropped, since a killed child may have written half of it.
    public func readLine(timeoutSeconds: Double = 300) -> String? {
        let deadline = Self.now() + timeoutSeconds
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return line
            }
            let remaining = deadline - Self.now()
            if remaining <= 0 {
                report("no line within \(timeoutSeconds) s, giving up on its output")
                return nil
            }
            var ready = pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)
            let polled = poll(&ready, 1, Int32(min(remaining * 1000 + 1, 60_000)))
            if polled < 0 && errno == EINTR { continue }
            if polled == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(stdoutFD, $0.baseAddress, 4096) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }  // an unterminated last line is dropped: it may be torn
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    /// Writes `text` about this child to stderr (unbuffered, so it shows even if the test run is killed).
    private func report(_ text: String) {
        let line = "ChildProcess \(pid): \(text)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }

    private static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// Sends `signal` and waits for the child to exit; returns its raw wait status. Once the child has
    /// been waited for, no signal is sent (its PID may belong to another process by then) and the status
    /// of that wait is returned.
    ///
    /// A child still running `timeoutSeconds` after the signal is killed with `SIGKILL` (reported on stderr),
    /// so a process that hangs in its shutdown fails the test that checks its status instead of hanging it.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeoutSeconds: Double = 60) -> Int32 {
        if reaped { return exitStatus }
        kill(pid, signal)
        return wait(timeoutSeconds: timeoutSeconds)
    }

    /// Waits for the child to exit; returns its raw wait status (`status & 0x7f` is the terminating signal,
    /// `(status >> 8) & 0xff` the exit code). A child still running after `timeoutSeconds` is killed with
    /// `SIGKILL` (reported on stderr) and that status is returned.
    @discardableResult
    public func wait(timeoutSeconds: Double = 300) -> Int32 {
        if reaped { return exitStatus }
        var status: Int32 = 0
        let deadline = Self.now() + timeoutSeconds
        var pause: useconds_t = 200
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }  // not our child any more: nothing to wait for
            if r == 0 && Self.now() >= deadline {
                report("still running \(timeoutSeconds) s after it was waited for; killed (SIGKILL)")
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                break
            }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        reaped = true
        exitStatus = status
        return status
    }

    deinit {
        if !reaped {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        close(stdoutFD)
    }

    /// The path of a product built by the same `swift build` as the running test bundle (it sits in the
    /// same directory), e.g. `ChildProcess.builtProduct("iotd")`.
    public static func builtProduct(_ name: String) throws -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let path = String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/" + name
        guard access(path, X_OK) == 0 else {
            throw Failure(description: "\(path) is missing: build all products first (`swift build --build-tests`)")
        }
        return path
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago, for a peer that the test starts and that
    /// listens on it.
    ///
    /// The port is picked at random outside the kernel's ephemeral range
    /// (`/proc/sys/net/ipv4/ip_local_port_range`), and checked by binding it. A port from that range (what
    /// binding port 0 gives) is where every outgoing connection of every other test takes its local port
    /// from, so one of them could take it before the peer binds it.
    public static func freeLoopbackPort() -> Int { freePort(type: Int32(SOCK_STREAM.rawValue)) }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` now.
    public static func acceptsConnections(onLoopbackPort port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return rc == 0
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port` (a peer started on it is listening).
    ///
    /// - Throws: ``Failure`` naming the port when `seconds` pass first.
    public static func waitForLoopbackPort(_ port: Int, seconds: Double = 10) throws {
        let deadline = now() + seconds
        while !acceptsConnections(onLoopbackPort: port) {
            guard now() < deadline else {
                throw Failure(description: "nothing listens on 127.0.0.1:\(port) after \(seconds) s")
            }
            usleep(20_000)
        }
    }

    /// A UDP port on 127.0.0.1 that was free a moment ago, for a peer that listens on UDP (CoAP), picked as
    /// ``freeLoopbackPort()`` picks. A port from ``freeLoopbackPort()`` is free for TCP only: a UDP socket
    /// (another test's CoAP client, say) may hold it.
    public static func freeLoopbackUDPPort() -> Int { freePort(type: Int32(SOCK_DGRAM.rawValue)) }

    /// The ports that outgoing connections and binds to port 0 do not use: below the ephemeral range,
    /// from 10000 (or above it when the range starts lower).
    static func nonEphemeralPorts() -> ClosedRange<Int> {
        var low = 32768
        var high = 60999
        if let f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r") {
            defer { fclose(f) }
            var line = [CChar](repeating: 0, count: 64)
            if fgets(&line, Int32(line.count), f) != nil {
                let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap {
                    Int($0)
                }
                if fields.count == 2 { (low, high) = (fields[0], fields[1]) }
            }
        }
        if low - 1 >= 10_000 + 1_000 { return 10_000...(low - 1) }
        if high + 1 <= 65_535 - 1_000 { return (high + 1)...65_535 }
        return 1_024...65_535  // the ephemeral range is everything: any port
    }

    private static func freePort(type: Int32) -> Int {
        let range = nonEphemeralPorts()
        for _ in 0..<200 {
            let port = Int.random(in: range)
            if bindable(port, type: type) { return port }
        }
        return bound(0, type: type)  // fall back to a port the kernel picks
    }

    /// Whether `port` on 127.0.0.1 can be bound now (with no `SO_REUSEADDR`, so a port in `TIME_WAIT` is
    /// skipped too).
    private static func bindable(_ port: Int, type: Int32) -> Bool { bound(port, type: type) == port }

    /// Binds a socket of `type` to 127.0.0.1:`port`, closes it, and returns the port it was bound to (0
    /// when the bind failed).
    private static func bound(_ port: Int, type: Int32) -> Int {
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard rc == 0 else { return 0 }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
