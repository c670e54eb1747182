import Foundation
import IoTTestSupport
import IoTTesting
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The peers of the Modbus tests: the libmodbus simulator (built from `Tests/Support/peers` with the C
/// compiler), the pymodbus device (PyPI `pymodbus`) and a `socat` pseudo-terminal pair.
enum Peers {
    static let directory: String = {
        let file = #filePath
        let tests = file[..<file.range(of: "/IoTModbusTests/")!.lowerBound]
        return tests + "/Support/peers"
    }()

    /// Where the built simulator lives (checked once per test process).
    private static let simulator = Mutex<String?>(nil)

    /// Builds `modbus_sim_server.c` against libmodbus into the package's `.build/test-peers` (not `/tmp`, so
    /// test runs leave nothing behind), again only when the source is newer than the binary, and returns the
    /// binary's path.
    static func libmodbusSimulator() throws -> String {
        try simulator.withLock { path in
            if let path { return path }
            let source = directory + "/modbus_sim_server.c"
            let package = String(directory[..<directory.range(of: "/Tests/Support/peers")!.lowerBound])
            let outDirectory = package + "/.build/test-peers"
            let out = outDirectory + "/modbus_sim_server"
            var sourceInfo = stat()
            var binaryInfo = stat()
            if stat(out, &binaryInfo) == 0, stat(source, &sourceInfo) == 0,
                binaryInfo.st_mtim.tv_sec > sourceInfo.st_mtim.tv_sec, access(out, X_OK) == 0
            {
                path = out
                return out
            }
            mkdir(package + "/.build", 0o755)  // absent when the package is built with --scratch-path elsewhere
            mkdir(outDirectory, 0o755)
            let cc = try which("cc") ?? which("clang") ?? { throw PeerError("no C compiler: apt-get install gcc") }()
            let flags = try shellOutput(["/usr/bin/env", "pkg-config", "--cflags", "--libs", "libmodbus"])
                .split(separator: " ").map(String.init).filter { !$0.isEmpty }
            // Built beside its final name and renamed into place: another test process may be using the old one.
            let building = out + ".\(getpid())"
            let compile = try ChildProcess([cc, "-O2", "-o", building, source] + flags)
            let status = compile.wait()
            guard status == 0, rename(building, out) == 0 else {
                unlink(building)
                throw PeerError("compiling modbus_sim_server.c failed (status \(status)); is libmodbus-dev installed?")
            }
            path = out
            return out
        }
    }

    static func which(_ name: String) throws -> String? {
        for dir in (getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }

    static func require(_ name: String, install: String) throws -> String {
        guard let p = try which(name) else { throw PeerError("\(name) is missing: \(install)") }
        return p
    }

    static func shellOutput(_ arguments: [String]) throws -> String {
        let child = try ChildProcess(arguments)
        var out = ""
        while let line = child.readLine() { out += line + " " }
        guard child.wait() == 0 else { throw PeerError("\(arguments.joined(separator: " ")) failed") }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func python() throws -> String {
        let python = try require("python3", install: "apt-get install python3")
        let check = try ChildProcess([python, "-c", "import pymodbus, serial; print(pymodbus.__version__)"])
        let version = check.readLine()
        guard check.wait() == 0, version != nil else {
            throw PeerError("pymodbus is missing: pip install pymodbus==3.16.1 pyserial (scripts/test.sh does it)")
        }
        return python
    }
}

struct PeerError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A running Modbus TCP server: the libmodbus simulator or a pymodbus device, stopped by its PID.
final class ModbusServer {
    enum Kind: String, CaseIterable, CustomStringConvertible, Sendable {
        case libmodbus, pymodbus
        var description: String { rawValue }
    }
    let kind: Kind
    let specs: [String]
    private(set) var child: ChildProcess
    private(set) var port: Int

    /// Starts a server on a free port (or on `port`) with `specs` (`h:ADDR=V,…`, `i:`, `c:`, `d:`).
    init(_ kind: Kind, specs: [String], port: Int = 0) throws {
        self.kind = kind
        self.specs = specs
        (child, self.port) = try Self.start(kind, specs: specs, port: port)
    }

    private static func start(_ kind: Kind, specs: [String], port: Int) throws -> (ChildProcess, Int) {
        let child: ChildProcess
        switch kind {
        case .libmodbus: child = try ChildProcess([try Peers.libmodbusSimulator(), String(port)] + specs)
        case .pymodbus:
            // The port is picked here, where every test peer's is (the simulator binds port 0 itself and keeps it).
            let port = port == 0 ? ChildProcess.freeLoopbackPort() : port
            child = try ChildProcess(
                [try Peers.python(), Peers.directory + "/pymodbus_device.py", "--tcp", String(port)] + specs)
        }
        guard let line = child.readLine(), line.hasPrefix("ready "), let p = Int(line.dropFirst(6)) else {
            child.stop(signal: SIGKILL)
            throw PeerError("the \(kind) server did not start")
        }
        return (child, p)
    }

    /// Stops answering (SIGSTOP): connections stay open, requests time out.
    func freeze() { kill(child.pid, SIGSTOP) }
    /// Answers again (SIGCONT).
    func thaw() { kill(child.pid, SIGCONT) }

    /// Kills the server (connections refused from now on).
    func kill9() { child.stop(signal: SIGKILL) }

    /// Starts it again on the same port with the same data.
    func restart() throws {
        var lastError: (any Error)?
        for _ in 0..<50 {
            do {
                (child, port) = try Self.start(kind, specs: specs, port: port)
                return
            } catch {
                lastError = error
                usleep(100_000)
            }
        }
        throw lastError!
    }

    /// Kills the server (pymodbus does not always exit on SIGTERM while a client is connected).
    func stop() {
        child.stop(signal: SIGKILL)
    }
}

/// A `socat` pseudo-terminal pair: a serial line between two paths.
final class SerialPair {
    let child: ChildProcess
    let a: String
    let b: String
    let directory: String

    init() throws {
        let socat = try Peers.require("socat", install: "apt-get install socat")
        directory = "/tmp/iot-modbus-pty-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(directory, 0o700)
        a = directory + "/a"
        b = directory + "/b"
        child = try ChildProcess([socat, "pty,raw,echo=0,link=\(a)", "pty,raw,echo=0,link=\(b)"])
        for _ in 0..<100 where access(a, F_OK) != 0 || access(b, F_OK) != 0 { usleep(20_000) }
        guard access(a, F_OK) == 0, access(b, F_OK) == 0 else {
            child.stop(signal: SIGKILL)
            throw PeerError("socat did not create the pseudo-terminal pair")
        }
    }

    /// Kills socat (on SIGTERM it may wait for the pseudo-terminals to drain) and removes the links.
    func stop() {
        child.stop(signal: SIGKILL)
        unlink(a)
        unlink(b)
        rmdir(directory)
    }
}

/// A pymodbus RTU device on a serial line.
final class SerialModbusDevice {
    let child: ChildProcess
    init(path: String, baud: Int, specs: [String]) throws {
        child = try ChildProcess(
            [try Peers.python(), Peers.directory + "/pymodbus_device.py", "--serial", path, "--baud", String(baud)]
                + specs)
        guard child.readLine() == "ready" else {
            child.stop(signal: SIGKILL)
            throw PeerError("the pymodbus serial device did not start")
        }
    }
    func stop() {
        child.stop(signal: SIGKILL)
    }
}
