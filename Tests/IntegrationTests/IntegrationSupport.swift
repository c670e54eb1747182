import Foundation
import IoTTestSupport
import IoTTesting
import Testing

struct IntegrationFailure: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` every `pollMillis` until it holds; throws naming `what` when `seconds` pass first.
func eventually(_ what: String, seconds: Double, pollMillis: UInt32 = 100, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try !condition() {
        if Date() > deadline { throw IntegrationFailure(description: "not within \(seconds) s: \(what)") }
        usleep(pollMillis * 1_000)
    }
}

/// Runs the built `iotd` with `arguments` (a command such as `backup` or `restore`) to its end: its exit status
/// and its output lines, stdout and stderr together.
func runIotd(_ arguments: [String]) throws -> (status: Int32, output: [String]) {
    let process = try ChildProcess(
        ["/bin/sh", "-c", #"exec "$0" "$@" 2>&1"#, try ChildProcess.builtProduct("iotd")] + arguments)
    var output: [String] = []
    while let line = process.readLine(timeoutSeconds: 120) { output.append(line) }
    return (process.wait(timeoutSeconds: 60) >> 8, output)
}
