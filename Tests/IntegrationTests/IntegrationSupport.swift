import Foundation
import IoTTestSupport
import IoTTesting
import Testing

struct IntegrationFailure: Error, CustomStringConvertible {
    var description: String
}

/// Starts `iotd serve --config config` (the built product) and returns once its management API on
/// `apiPort` is ready; the caller stops the process.
/// (``IotdProcess`` does this with the configuration's preamble and ports picked for the test.)
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
        headers: ["Authorization": "Bearer \(IotdProcess.adminKey)", "Content-Type": "application/json"],
        body: Array(body.utf8))
    return (r.status, r.text)
}
