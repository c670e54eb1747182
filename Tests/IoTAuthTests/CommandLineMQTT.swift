import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting

#if canImport(Glibc)
    import Glibc
#endif

/// Mosquitto's command-line clients, as devices and as an independent observer (tests only).
struct CommandLineMQTT {
    let port: Int

    /// Publishes one message; returns the exit code (0 = connected and, at QoS 1, acknowledged).
    func publish(
        username: String, password: String, topic: String, message: String, qos: Int = 1, clientID: String? = nil,
        version: String = "311"
    ) throws -> Int32 {
        var arguments = try [
            Fixture.binary(["/usr/bin/mosquitto_pub"], package: "mosquitto-clients"), "-h", "127.0.0.1", "-p",
            "\(port)",
            "-u", username, "-P", password, "-t", topic, "-m", message, "-q", "\(qos)", "-V", version,
        ]
        if let clientID { arguments += ["-i", clientID] }
        return try Fixture.run(arguments).status
    }

    /// Subscribes once and returns at the first message or when refused; the exit code and output.
    func subscribeOnce(username: String, password: String, topic: String, seconds: Int = 2) throws -> (
        status: Int32, lines: [String]
    ) {
        try Fixture.run([
            try Fixture.binary(["/usr/bin/mosquitto_sub"], package: "mosquitto-clients"), "-h", "127.0.0.1", "-p",
            "\(port)", "-u", username, "-P", password, "-t", topic, "-V", "5", "-C", "1", "-W", "\(seconds)", "-v",
        ])
    }

    /// Starts a subscriber that prints `topic payload` lines; it is subscribed once ``Observer/waitUntilSubscribed()``
    /// returns (the broker's retained `$SYS` uptime arrives first).
    func observe(username: String, password: String, topics: [String], seconds: Int = 15, sysReadiness: Bool = true)
        throws
        -> Observer
    {
        var arguments = [
            try Fixture.binary(["/usr/bin/mosquitto_sub"], package: "mosquitto-clients"), "-h", "127.0.0.1", "-p",
            "\(port)", "-u", username, "-P", password, "-v", "-W", "\(seconds)",
        ]
        if sysReadiness { arguments += ["-t", "$SYS/broker/uptime"] }
        for topic in topics { arguments += ["-t", topic] }
        return Observer(process: try ChildProcess(arguments))
    }

    final class Observer {
        let process: ChildProcess
        init(process: ChildProcess) { self.process = process }

        func waitUntilSubscribed() throws {
            while let line = process.readLine() {
                if line.hasPrefix("$SYS/") { return }
            }
            throw FixtureFailure("the observer mosquitto_sub ended before it was subscribed")
        }

        /// Lines (other than `$SYS`) up to and including the first that contains `marker`; `nil` if it ended first.
        func lines(until marker: String) -> [String]? {
            var seen: [String] = []
            while let line = process.readLine() {
                if line.hasPrefix("$SYS/") { continue }
                seen.append(line)
                if line.contains(marker) { return seen }
            }
            return nil
        }

        deinit { process.stop(signal: SIGKILL) }
    }
}

/// A ``DynamicSecurityChannel`` over `mosquitto_rr` (one process per request), for tests that exercise
/// the provisioner against a real broker independently of the platform's own MQTT client.
struct CommandLineDynamicSecurityChannel: DynamicSecurityChannel {
    let port: Int
    let username: String
    let password: String

    func exchange(_ request: [UInt8], correlation: String, timeout: Duration) async throws(IoTError) -> [UInt8] {
        let result: (status: Int32, lines: [String])
        do {
            result = try Fixture.run([
                try Fixture.binary(["/usr/bin/mosquitto_rr"], package: "mosquitto-clients"), "-h", "127.0.0.1", "-p",
                "\(port)", "-u", username, "-P", password, "-t", DynamicSecurityProvisioner.controlTopic, "-e",
                DynamicSecurityProvisioner.responseTopic, "-W", "\(max(1, timeout.inMilliseconds / 1000))", "-m",
                String(decoding: request, as: UTF8.self),
            ])
        } catch {
            throw IoTError(.unavailable, "cannot run mosquitto_rr: \(error)")
        }
        guard result.status == 0 else {
            throw IoTError(
                .unavailable, "mosquitto_rr failed with \(result.status): the broker on port \(port) is not reachable")
        }
        guard
            let answer = result.lines.first(where: {
                DynamicSecurityResponse.payload(Array($0.utf8), answers: correlation)
            })
        else {
            throw IoTError(.timeout, "no dynamic-security answer for \(correlation): \(result.lines)")
        }
        return Array(answer.utf8)
    }
}
