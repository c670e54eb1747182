import Foundation
import IoTTesting
import Testing

/// A temporary directory removed when the value is released.
final class TemporaryDirectory {
    let path: String
    init(_ prefix: String) {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Polls `GET path` on `port` until it answers `status` (or fails after `seconds`).
func waitFor(port: Int, path: String, status: Int = 200, headers: [String: String] = [:], seconds: Double = 20) throws {
    let deadline = Date().addingTimeInterval(seconds)
    var last = "no answer"
    while Date() < deadline {
        if let client = try? LoopbackHTTPClient(port: port), let r = try? client.request("GET", path, headers: headers) {
            if r.status == status { return }
            last = "status \(r.status)"
        }
        usleep(50_000)
    }
    throw IntegrationFailure(description: "GET \(path) on port \(port) did not answer \(status) within \(seconds) s (\(last))")
}

struct IntegrationFailure: Error, CustomStringConvertible {
    var description: String
}
