import Foundation
import IoTTestSupport
import IoTTesting

#if canImport(Glibc)
    import Glibc
#endif

/// A test fixture failed to start its peer; the message says what to install or look at.
struct FixtureFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Fixture {
    /// The first of `paths` that is executable, or a failure telling what to install.
    static func binary(_ paths: [String], package: String, mode: Int32 = X_OK) throws -> String {
        for path in paths where access(path, mode) == 0 { return path }
        throw FixtureFailure(
            "\(paths[0]) is missing: install the Debian package \(package) (scripts/test.sh installs APT_TEST_PACKAGES from scripts/lib.sh)"
        )
    }

    /// A new empty directory under the system temporary directory.
    static func temporaryDirectory(_ prefix: String) throws -> String {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FixtureFailure("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`, or `process` exits.
    static func waitForPort(_ port: Int, process: ChildProcess, seconds: Double, what: String) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if ChildProcess.acceptsConnections(onLoopbackPort: port) { return }
            var status: Int32 = 0
            if waitpid(process.pid, &status, WNOHANG) == process.pid {
                throw FixtureFailure("\(what) exited (status \(status)) before listening on port \(port)")
            }
            usleep(50_000)
        }
        throw FixtureFailure("\(what) did not listen on port \(port) within \(seconds) s")
    }

    /// Runs a command to its end; returns its exit code and stdout lines.
    @discardableResult
    static func run(_ arguments: [String], environment: [String] = []) throws -> (status: Int32, lines: [String]) {
        let child = try ChildProcess(arguments, environment: environment)
        var lines: [String] = []
        while let line = child.readLine() { lines.append(line) }
        let status = child.wait()
        return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), lines)
    }
}

/// A real Mosquitto 2 broker with the dynamic-security plugin on a free loopback port, in a temporary
/// directory; stopped by its PID in ``stop()`` or at the latest when released.
final class MosquittoBroker: @unchecked Sendable {
    static let pluginPaths = [
        "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
        "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    ]
    let port: Int
    let directory: String
    let adminUsername = "admin"
    let adminPassword = "admin-\(UInt32.random(in: 0...UInt32.max))"
    private var process: ChildProcess?

    init() throws {
        let mosquitto = try Fixture.binary(["/usr/sbin/mosquitto"], package: "mosquitto")
        let ctrl = try Fixture.binary(["/usr/bin/mosquitto_ctrl"], package: "mosquitto-clients")
        let plugin = try Fixture.binary(Self.pluginPaths, package: "mosquitto", mode: R_OK)
        directory = try Fixture.temporaryDirectory("iot-mosquitto")
        let dynsec = directory + "/dynamic-security.json"
        let initialised = try Fixture.run([ctrl, "dynsec", "init", dynsec, adminUsername, adminPassword])
        guard initialised.status == 0 else {
            throw FixtureFailure("mosquitto_ctrl dynsec init failed (\(initialised.status)): \(initialised.lines)")
        }
        port = ChildProcess.freeLoopbackPort()
        let config = """
            listener \(port) 127.0.0.1
            allow_anonymous false
            user root
            plugin \(plugin)
            plugin_opt_config_file \(dynsec)
            persistence false
            sys_interval 1
            log_dest file \(directory)/mosquitto.log
            log_type all

            """
        try config.write(toFile: directory + "/mosquitto.conf", atomically: true, encoding: .utf8)
        let process = try ChildProcess([mosquitto, "-c", directory + "/mosquitto.conf"])
        self.process = process
        do {
            try Fixture.waitForPort(port, process: process, seconds: 10, what: "mosquitto")
        } catch {
            throw FixtureFailure("\(error); log: \(log())")
        }
    }

    /// The broker's log so far.
    func log() -> String {
        (try? String(contentsOfFile: directory + "/mosquitto.log", encoding: .utf8)) ?? ""
    }

    /// Stops the broker (SIGKILL, by PID) and waits for it. SIGKILL because a child spawned from a test
    /// thread inherits that thread's signal mask, in which SIGTERM may be blocked.
    func stop() {
        process?.stop(signal: SIGKILL)
        process = nil
    }

    /// Freezes the broker (SIGSTOP, by PID): its connections stay open and nothing is answered, as with a
    /// broker that hangs or a network path that silently drops packets. ``thaw()`` resumes it.
    func freeze() {
        if let pid = process?.pid { kill(pid, SIGSTOP) }
    }

    /// Resumes a frozen broker (SIGCONT).
    func thaw() {
        if let pid = process?.pid { kill(pid, SIGCONT) }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// RabbitMQ with its MQTT plugin, on free loopback ports, with its own `epmd` (started first, on its own
/// port, so that Erlang does not start a shared daemon) and private data, log and configuration in a
/// temporary directory. Both are stopped by their PIDs.
final class RabbitMQBroker: @unchecked Sendable {
    static let serverScripts = [
        "/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/sbin/rabbitmq-server",
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
    ]
    let mqttPort: Int
    let directory: String
    private var server: ChildProcess?
    private var epmd: ChildProcess?

    init() throws {
        let epmdPath = try Fixture.binary(["/usr/bin/epmd"], package: "erlang-base")
        let script = try Self.serverScript()
        directory = try Fixture.temporaryDirectory("iot-rabbitmq")
        for sub in ["mnesia", "log", "home"] {
            try FileManager.default.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true)
        }
        mqttPort = ChildProcess.freeLoopbackPort()
        let amqpPort = ChildProcess.freeLoopbackPort()
        let epmdPort = ChildProcess.freeLoopbackPort()
        let distPort = ChildProcess.freeLoopbackPort()
        let config = """
            listeners.tcp.default = 127.0.0.1:\(amqpPort)
            mqtt.listeners.tcp.default = 127.0.0.1:\(mqttPort)
            mqtt.allow_anonymous = true
            loopback_users = none
            log.console = false
            log.file.level = info

            """
        try config.write(toFile: directory + "/rabbitmq.conf", atomically: true, encoding: .utf8)
        try "[rabbitmq_mqtt].\n".write(toFile: directory + "/enabled_plugins", atomically: true, encoding: .utf8)
        let epmd = try ChildProcess([epmdPath, "-port", "\(epmdPort)", "-address", "127.0.0.1"])
        self.epmd = epmd
        try Fixture.waitForPort(epmdPort, process: epmd, seconds: 5, what: "epmd")
        let environment = [
            "HOME=\(directory)/home",
            "ERL_EPMD_PORT=\(epmdPort)",
            "ERL_EPMD_ADDRESS=127.0.0.1",
            "RABBITMQ_NODENAME=iot-test-\(mqttPort)@localhost",
            "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
            "RABBITMQ_DIST_PORT=\(distPort)",
            "RABBITMQ_MNESIA_BASE=\(directory)/mnesia",
            "RABBITMQ_LOG_BASE=\(directory)/log",
            "RABBITMQ_CONFIG_FILE=\(directory)/rabbitmq.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE=\(directory)/enabled_plugins",
            "RABBITMQ_PID_FILE=\(directory)/rabbit.pid",
            // exec the Erlang VM in place of the script, so the PID we hold is the broker's
            "RUNNING_UNDER_SYSTEMD=true",
        ]
        let server = try ChildProcess([script], environment: environment)
        self.server = server
        do {
            try Fixture.waitForPort(mqttPort, process: server, seconds: 90, what: "rabbitmq-server")
            try waitForMQTT(seconds: 90)
        } catch {
            stop()
            throw error
        }
    }

    /// Waits until one QoS 1 publish goes through. Under load the MQTT port opens while the broker is still
    /// booting, and a CONNECT sent then can go unanswered: a transport that connected at that moment waited
    /// for its keepalive and failed its test ("not connected and subscribed within 20000 ms", in a
    /// parallel run). Each attempt is bounded by timeout(1); the topic is one no test subscribes to.
    private func waitForMQTT(seconds: Double) throws {
        let publish = try Fixture.binary(["/usr/bin/mosquitto_pub"], package: "mosquitto-clients")
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let attempt = try Fixture.run([
                "/usr/bin/timeout", "10", publish, "-h", "127.0.0.1", "-p", "\(mqttPort)", "-u", "guest", "-P", "guest",
                "-t", "iot-test/ready", "-m", "1", "-q", "1",
            ])
            if attempt.status == 0 { return }
            guard Date() < deadline else {
                throw FixtureFailure(
                    "rabbitmq-server did not take an MQTT publish within \(Int(seconds)) s (last: exit \(attempt.status), \(attempt.lines.joined(separator: " ")))"
                )
            }
            usleep(500_000)
        }
    }

    static func serverScript() throws -> String {
        if let found = try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/rabbitmq/lib")
            .filter({ $0.hasPrefix("rabbitmq_server-") }).sorted().last
        {
            let path = "/usr/lib/rabbitmq/lib/\(found)/sbin/rabbitmq-server"
            if access(path, X_OK) == 0 { return path }
        }
        return try Fixture.binary(serverScripts, package: "rabbitmq-server")
    }

    /// Stops RabbitMQ (the VM, by PID) and then its epmd (by PID), with SIGKILL (see ``MosquittoBroker/stop()``);
    /// the broker's data is a temporary directory, removed afterwards.
    func stop() {
        server?.stop(signal: SIGKILL)
        server = nil
        epmd?.stop(signal: SIGKILL)
        epmd = nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
