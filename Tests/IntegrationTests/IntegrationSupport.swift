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
