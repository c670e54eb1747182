import Foundation

#if canImport(Glibc)
    public import Glibc
#endif

/// An `iotd serve` for a test: a data directory of its own, the device and management listeners on free
/// loopback ports, the tests' admin key, and the YAML the test adds; started, restarted and stopped by its
/// PID.
///
/// ```swift
/// let iotd = IotdProcess("iotd-rules")
/// try iotd.configure(iotd.preamble() + "tenants: [{ id: lab }]\n")
/// try iotd.start()
/// defer { iotd.stop() }
/// #expect(try iotd.api("GET", "/api/v1/tenants").status == 200)
/// ```
public final class IotdProcess: @unchecked Sendable {
    /// The admin key of every test configuration.
    public static let adminKey = "test-admin-key-0123456789abcdef0123"

    /// The test's folder: the configuration and the data directory.
    public let directory: TemporaryDirectory
    /// The device HTTP listener's port.
    public let httpPort: Int
    /// The management API's port.
    public let apiPort: Int
    /// The running process, between ``start(seconds:)`` and ``stop(signal:timeoutSeconds:)``.
    public private(set) var process: ChildProcess?

    /// `<directory>/data`, the preamble's `dataDirectory`.
    public var dataDirectory: String { directory.path + "/data" }
    /// `<directory>/iotd.yaml`.
    public var configPath: String { directory.path + "/iotd.yaml" }

    /// Picks the ports and creates the folder; nothing runs yet.
    public init(_ prefix: String = "iotd") {
        directory = TemporaryDirectory(prefix)
        httpPort = ChildProcess.freeLoopbackPort()
        apiPort = ChildProcess.freeLoopbackPort()
    }

    /// What every test configuration starts with: `dataDirectory`, `http` on ``httpPort``, `management` on
    /// ``apiPort`` with ``adminKey``, and the log level; `http` and `management` are more keys of those two
    /// sections (`"maxBodyBytes: 1024"`). Ends with a newline.
    public func preamble(http: String = "", management: String = "", logLevel: String = "error") -> String {
        """
        dataDirectory: \(dataDirectory)
        http: { port: \(httpPort)\(http.isEmpty ? "" : ", " + http) }
        management: { port: \(apiPort), adminAPIKey: \(Self.adminKey)\(management.isEmpty ? "" : ", " + management) }
        logging: { level: \(logLevel) }

        """
    }

    /// Writes `yaml` to ``configPath``.
    public func configure(_ yaml: String) throws {
        try yaml.write(toFile: configPath, atomically: false, encoding: .utf8)
    }

    /// Starts `iotd serve --config` ``configPath`` (the built product) and returns once `/readyz` answers 200.
    ///
    /// - Throws: when iotd is not built, or `/readyz` did not answer in time (the process is then killed).
    @discardableResult
    public func start(seconds: Double = 20) throws -> ChildProcess {
        let server = try Self.serve(config: configPath, apiPort: apiPort, seconds: seconds)
        process = server
        return server
    }

    /// Stops the process by its PID (SIGTERM: graceful) and returns its wait status; 0 when none runs.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeoutSeconds: Double = 60) -> Int32 {
        guard let server = process else { return 0 }
        process = nil
        return server.stop(signal: signal, timeoutSeconds: timeoutSeconds)
    }

    /// One management API request with ``adminKey`` and a JSON body; the status and the body's text.
    public func api(_ method: String, _ path: String, _ body: String = "") throws -> (status: Int, text: String) {
        try Self.api(port: apiPort, method, path, body)
    }

    /// Issues an access token for `device` of `tenant` (`POST /api/v1/tenants/<tenant>/devices/<device>/tokens`
    /// with ``adminKey``) and returns it.
    ///
    /// ```swift
    /// let token = try iotd.issueToken(tenant: "lab", device: "d")
    /// let r = try LoopbackHTTPClient(port: iotd.httpPort).request("POST", "/api/v1/\(token)/telemetry", body: body)
    /// ```
    ///
    /// - Throws: ``ChildProcess/Failure`` naming the status and the body when the answer is not a 2xx with a
    ///   `token` string; what ``api(_:_:_:)`` throws when the request fails.
    public func issueToken(tenant: String, device: String) throws -> String {
        let issued = try api("POST", "/api/v1/tenants/\(tenant)/devices/\(device)/tokens", "{}")
        let object = try? JSONSerialization.jsonObject(with: Data(issued.text.utf8)) as? [String: Any]
        guard (200..<300).contains(issued.status), let token = object?["token"] as? String else {
            throw ChildProcess.Failure(
                description: "no token for device \(device) of tenant \(tenant): \(issued.status) \(issued.text)")
        }
        return token
    }

    /// Starts `iotd serve --config config` (the built product) and returns once `/readyz` on `apiPort` answers
    /// 200; the caller stops the process. (An ``IotdProcess`` also writes the configuration and picks the ports.)
    ///
    /// - Throws: when iotd is not built, or `/readyz` did not answer in time (the process is then killed).
    public static func serve(config: String, apiPort: Int, seconds: Double = 20) throws -> ChildProcess {
        let server = try ChildProcess([try ChildProcess.builtProduct("iotd"), "serve", "--config", config])
        do {
            try waitFor(port: apiPort, path: "/readyz", seconds: seconds)
        } catch {
            _ = server.stop(signal: SIGKILL)
            throw error
        }
        return server
    }

    /// One request to the management API on `port` with ``adminKey`` and a JSON body; the status and the body's
    /// text.
    public static func api(port: Int, _ method: String, _ path: String, _ body: String = "") throws
        -> (status: Int, text: String)
    {
        let r = try LoopbackHTTPClient(port: port).request(
            method, path, headers: ["Authorization": "Bearer \(adminKey)", "Content-Type": "application/json"],
            body: Array(body.utf8))
        return (r.status, r.text)
    }

    deinit { _ = process?.stop(signal: SIGKILL) }
}

/// Polls `GET path` on `port` until it answers `status`.
///
/// - Throws: ``ChildProcess/Failure`` naming the last answer when `seconds` pass first.
public func waitFor(port: Int, path: String, status: Int = 200, headers: [String: String] = [:], seconds: Double = 20)
    throws
{
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
    throw ChildProcess.Failure(
        description: "GET \(path) on port \(port) did not answer \(status) within \(seconds) s (\(last))")
}
