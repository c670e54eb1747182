import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 17: schemathesis (PyPI) against the `openapi.yaml` a running iotd serves, on both listeners, with and
/// without credentials: 0 server errors, 0 undocumented statuses or content types, 0 responses that break their
/// schema, 405 for an undocumented method, no response slower than 10 s (a hung connection), and the daemon still up afterwards. The full
/// run (minutes per listener) is `SCHEMATHESIS_SECONDS=300`; CI runs 30 s each.
@Suite(.serialized) struct SchemathesisTests {
    /// Runs schemathesis; its exit status and the lines that name failures.
    static func run(spec: String, url: String, headers: [String], pathFilter: [String], seconds: Int) throws
        -> (status: Int32, failures: [String])
    {
        var arguments = [
            "/usr/bin/env", "python3", "-c",
            "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'st'; sys.exit(schemathesis())",
            "run", spec, "--url", url,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method",
            "--phases", "examples,fuzzing,stateful", "--max-time", "\(seconds)", "--workers", "1",
            "--max-response-time", "10", "--no-color",
        ]
        for h in headers { arguments += ["-H", h] }
        arguments += pathFilter
        let st = try ChildProcess(arguments)
        var failures: [String] = []
        var tail: [String] = []
        while let line = st.readLine() {
            if line.contains(" ST1") || line.contains("Runtime Error") || line.hasPrefix("    curl ") {
                failures.append(line)
            }
            tail.append(line)
            if tail.count > 30 { tail.removeFirst() }
        }
        let status = st.wait(timeoutSeconds: Double(seconds) + 300)
        if status != 0 { failures += tail }
        return (status, failures)
    }

    @Test func theServedSpecHoldsOnBothListenersWithAndWithoutCredentials() throws {
        let python = try ChildProcess(["/usr/bin/env", "python3", "-c", "import schemathesis"])
        try #require(python.wait() == 0, "schemathesis is not installed; scripts/test.sh installs it (pip)")
        let seconds = ProcessInfo.processInfo.environment["SCHEMATHESIS_SECONDS"].flatMap(Int.init) ?? 30
        let iotd = IotdProcess("iotd-schemathesis")
        let (httpPort, apiPort) = (iotd.httpPort, iotd.apiPort)
        try iotd.configure(
            iotd.preamble(logLevel: "critical") + """
                tenants:
                  - id: t1
                    products:
                      - { id: p1, signals: [{ name: temp }] }
                    devices:
                      - { uid: d1, product: p1 }
                """)
        try iotd.start()
        defer { iotd.stop() }
        let token = try iotd.issueToken(tenant: "t1", device: "d1")
        let spec = "http://127.0.0.1:\(apiPort)/openapi.yaml"
        let devicePaths = "^/api/v1/(devices|\\{token\\})"
        let runs: [(String, String, [String], [String])] = [
            (
                "management API with the admin key", "http://127.0.0.1:\(apiPort)",
                ["Authorization: Bearer \(IotdProcess.adminKey)"],
                ["--exclude-path-regex", devicePaths]
            ),
            (
                "management API without credentials", "http://127.0.0.1:\(apiPort)", [],
                ["--exclude-path-regex", devicePaths]
            ),
            (
                "device listener with a device token", "http://127.0.0.1:\(httpPort)",
                ["Authorization: Bearer \(token)"],
                ["--include-path-regex", devicePaths]
            ),
            (
                "device listener without credentials", "http://127.0.0.1:\(httpPort)", [],
                ["--include-path-regex", devicePaths]
            ),
        ]
        for (name, url, headers, filter) in runs {
            let result = try Self.run(spec: spec, url: url, headers: headers, pathFilter: filter, seconds: seconds)
            #expect(result.status == 0, "\(name): \(result.failures.joined(separator: "\n"))")
            #expect(
                try LoopbackHTTPClient(port: apiPort).request("GET", "/healthz").status == 200,
                "iotd answers after \(name)")
        }
    }
}
