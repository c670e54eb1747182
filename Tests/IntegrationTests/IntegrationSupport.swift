import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// Polls `GET path` on `port` until it answers `status` (or fails after `seconds`).
func waitFor(port: Int, path: String, status: Int = 200, headers: [String: String] = [:], seconds: Double = 20) throws {
    let deadline = Date().addingTimeInterval(seconds)
    var last = "no answer"
    while Date() < deadline {
        if let client = try? LoopbackHTTPClient(port: port), let r = try? client.request("GET", path, headers: headers)
        {
            if r.status == status { return }
            last = "status \(r.status)"
        }
        usleep(50_000)
    }
    throw IntegrationFailure(
        description: "GET \(path) on port \(port) did not answer \(status) within \(seconds) s (\(last))")
}

struct IntegrationFailure: Error, CustomStringConvertible {
    var description: String
}

/// Starts `iotd serve --config config` (the built product) and returns once its management API on
/// `apiPort` is ready; the caller stops the process.
func startIotd(config: String, apiPort: Int) throws -> ChildProcess {
    let server = try ChildProcess([try ChildProcess.builtProduct("iotd"), "serve", "--config", config])
    do {
        try waitFor(port: apiPort, path: "/readyz")
    } catch {
        server.stop(signal: SIGKILL)
        throw error
    }
    return server
}

/// One request to an iotd's management API with the admin key these tests configure (`adminAPIKey: test-admin-key-0123456789abcdef0123`)
/// and a JSON body; the status and the body text.
func managementRequest(port: Int, _ method: String, _ path: String, _ body: String = "") throws
    -> (status: Int, text: String)
{
    let r = try LoopbackHTTPClient(port: port).request(
        method, path,
        headers: ["Authorization": "Bearer test-admin-key-0123456789abcdef0123", "Content-Type": "application/json"],
        body: Array(body.utf8))
    return (r.status, r.text)
}
