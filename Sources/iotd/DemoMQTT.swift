import Foundation
import IoTCore
import IoTProtocols

/// When a `mosquitto` binary is present, `iotd demo` also ingests over MQTT: it starts a local broker on a
/// free loopback port (stopped by its PID at the end), adds an MQTT client to the platform's manager, and
/// sends the thermometers' readings through the broker as well.
final class DemoMQTT: @unchecked Sendable {
    static let binary = "/usr/sbin/mosquitto"
    let port: Int
    /// The broker's process id; stopped by it.
    let broker: pid_t
    let publisher: MQTTClient
    private var task: Task<Void, Never>?

    /// Starts the broker, or returns `nil` when mosquitto is not installed.
    static func start(directory: String) throws -> DemoMQTT? {
        guard access(binary, X_OK) == 0 else { return nil }
        let port = try freeLoopbackPort()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let conf = directory + "/demo-mosquitto.conf"
        try """
        listener \(port) 127.0.0.1
        allow_anonymous true
        persistence false
        log_dest none
        user root
        max_queued_messages 0
        """.write(toFile: conf, atomically: true, encoding: .utf8)
        var broker: pid_t = 0
        let arguments: [String] = [binary, "-c", conf]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for arg in argv { free(arg) } }
        // Default signal handling in the child: iotd ignores SIGTERM and SIGINT (its service group watches
        // them), and an ignored signal stays ignored across exec, so the broker would not stop.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&signals, s) }
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let rc = posix_spawn(&broker, binary, nil, &attributes, argv, environ)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .ENOENT) }
        for _ in 0..<200 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            close(fd)
            if rc == 0 { break }
            usleep(25_000)
        }
        let publisher = try MQTTClient(
            configuration: .init(host: "127.0.0.1", port: port, clientID: "demo-devices", cleanSession: true))
        return DemoMQTT(port: port, broker: broker, publisher: publisher)
    }

    private init(port: Int, broker: pid_t, publisher: MQTTClient) {
        self.port = port
        self.broker = broker
        self.publisher = publisher
    }

    /// The platform's ingest client for the demo broker.
    var spec: MQTTClientSpec {
        MQTTClientSpec(
            id: "demo-broker", tenant: DemoFleet.tenant.rawValue,
            broker: .init(host: "127.0.0.1", port: port, clientID: "iotd-demo"),
            subscriptions: [.init(template: "demo/{uid}/telemetry", qos: 1)])
    }

    /// Publishes a reading for each of `devices` every `intervalMillis`.
    func simulate(devices: [String], intervalMillis: Int) {
        publisher.start()
        task = Task { [publisher] in
            try? await publisher.waitUntilReady()
            var n = 0
            while !Task.isCancelled {
                for uid in devices {
                    let t = 21 + 3 * sin(Double(n) / 10)
                    let body = #"{"temperature": \#((t * 10).rounded() / 10), "humidity": \#(40 + n % 10)}"#
                    try? await publisher.publish(topic: "demo/\(uid)/telemetry", payload: Array(body.utf8), qos: 1)
                }
                n += 1
                try? await Task.sleep(for: .milliseconds(intervalMillis))
            }
        }
    }

    func stop() async {
        task?.cancel()
        await task?.value
        await publisher.stop()
        kill(broker, SIGTERM)
        var status: Int32 = 0
        waitpid(broker, &status, 0)
    }

    /// A TCP port free on 127.0.0.1 right now: the kernel's choice for a socket bound to port 0.
    private static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EADDRINUSE) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
