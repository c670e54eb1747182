import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Logging
import ServiceLifecycle
import Testing

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The path of a peer binary, or a clear failure naming the Debian package that has it.
func peerBinary(_ path: String, package: String) throws -> String {
    guard access(path, X_OK) == 0 else {
        throw TestFailure("\(path) is missing: install the Debian package '\(package)' (scripts/test.sh does)")
    }
    return path
}

/// A real mosquitto broker on a free loopback port, started and stopped (by PID) by the test.
final class MosquittoBroker: @unchecked Sendable {
    private(set) var port: Int
    let directory = TemporaryDirectory("mqtt-broker")
    let extraConfiguration: String
    let persistence: Bool
    private(set) var process: ChildProcess?

    /// `extra` is appended to the configuration (listener options apply to the one listener).
    init(port: Int? = nil, persistence: Bool = false, extra: String = "") throws {
        self.port = port ?? ChildProcess.freeLoopbackPort()
        self.persistence = persistence
        self.extraConfiguration = extra
        // A port picked free a moment ago can be taken by another test's peer before mosquitto binds it: pick
        // another (at most twice) when mosquitto says so. A port the test chose is used as it is.
        for attempt in 0... {
            do {
                try start()
                return
            } catch  where port == nil && attempt < 2 && log.contains("Address already in use") {
                process?.stop(signal: SIGKILL)
                self.port = ChildProcess.freeLoopbackPort()
            }
        }
    }

    var configurationPath: String { directory.path + "/mosquitto.conf" }

    func start() throws {
        let binary = try peerBinary("/usr/sbin/mosquitto", package: "mosquitto")
        try """
        per_listener_settings true
        user root
        listener \(port) 127.0.0.1
        persistence \(persistence)
        persistence_location \(directory.path)/
        log_dest file \(directory.path)/mosquitto.log
        \(extraConfiguration.contains("allow_anonymous") ? "" : "allow_anonymous true")
        \(extraConfiguration)
        """.write(toFile: configurationPath, atomically: true, encoding: .utf8)
        process = try ChildProcess([binary, "-c", configurationPath])
        do {
            try ChildProcess.waitForLoopbackPort(port)
        } catch {
            throw TestFailure("mosquitto did not start: \(log)")
        }
    }

    /// Stops the broker (SIGTERM: it saves its persistence file) and waits for it.
    func stop() {
        process?.stop(signal: SIGTERM)
        process = nil
    }

    var log: String { (try? String(contentsOfFile: directory.path + "/mosquitto.log", encoding: .utf8)) ?? "" }

    deinit { stop() }
}

/// Publishes with the real `mosquitto_pub` and waits for it to exit.
func mosquittoPub(port: Int, topic: String, message: String, qos: Int = 1, extra: [String] = []) throws {
    let binary = try peerBinary("/usr/bin/mosquitto_pub", package: "mosquitto-clients")
    let p = try ChildProcess(
        [binary, "-h", "127.0.0.1", "-p", "\(port)", "-q", "\(qos)", "-t", topic, "-m", message] + extra)
    let status = p.wait()
    guard status == 0 else { throw TestFailure("mosquitto_pub exited with status \(status)") }
}

/// Polls `condition` until it holds (or fails after `seconds`).
func eventually(_ what: String, seconds: Double = 10, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try await !condition() {
        if Date() > deadline { throw TestFailure("not within \(seconds) s: \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

func clientConfiguration(port: Int, id: String, clean: Bool = false) -> MQTTClient.Configuration {
    var c = MQTTClient.Configuration(host: "127.0.0.1", port: port, clientID: id, cleanSession: clean)
    c.reconnectDelay = .milliseconds(100)
    c.maxReconnectDelay = .milliseconds(1_000)
    return c
}
