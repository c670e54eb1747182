import Foundation
import IoTTesting
import Testing

@Suite(.serialized) struct DemoTests {
    /// `iotd demo` starts with no configuration, serves `/healthz`, stores the simulated devices' data, and
    /// drains and exits 0 on SIGTERM.
    @Test func demoStartsServesStoresAndStopsCleanlyOnSIGTERM() throws {
        let dir = TemporaryDirectory("iotd-demo")
        let demo = try ChildProcess([
            try ChildProcess.builtProduct("iotd"), "demo", "--dir", dir.path, "--http-port", "0", "--api-port", "0",
            "--devices", "12", "--interval-ms", "200", "--quiet",
        ])
        var httpPort: Int?
        var apiPort: Int?
        var adminKey: String?
        while httpPort == nil || apiPort == nil, let line = demo.readLine() {
            if line.contains("device HTTP"), let p = line.split(separator: ":").last.flatMap({ Int($0) }) { httpPort = p }
            if line.contains("management API") {
                let words = line.split(separator: " ")
                apiPort = words.first { $0.hasPrefix("http://") }.flatMap { $0.split(separator: ":").last }.flatMap { Int($0) }
                adminKey = words.last.map { String($0.dropLast()) }
            }
        }
        let api = try #require(apiPort)
        #expect(httpPort != nil)
        try waitFor(port: api, path: "/healthz")
        try waitFor(port: api, path: "/readyz")
        // Stored data shows up through the management API.
        let key = try #require(adminKey)
        let deadline = Date().addingTimeInterval(15)
        var latest = ""
        while Date() < deadline {
            let client = try LoopbackHTTPClient(port: api)
            let r = try client.request("GET", "/api/v1/tenants/demo/devices/thermometer-01/latest", headers: ["Authorization": "Bearer \(key)"])
            latest = r.text
            if r.status == 200 && latest.contains("temperature") { break }
            usleep(100_000)
        }
        #expect(latest.contains("temperature"), "latest values: \(latest)")
        let status = demo.stop(signal: SIGTERM)
        #expect(status & 0x7f == 0, "killed by signal \(status & 0x7f)")
        #expect((status >> 8) & 0xff == 0, "exit code \((status >> 8) & 0xff)")
        var rest: [String] = []
        while let line = demo.readLine() { rest.append(line) }
        #expect(rest.contains { $0.hasPrefix("stopped:") && $0.contains("in flight 0") }, "\(rest)")
    }
}

@Suite struct ConfigurationTests {
    /// The documented example configuration is a valid configuration.
    @Test func exampleConfigurationIsValid() throws {
        let example = String(#filePath.prefix(upTo: #filePath.range(of: "/Tests/")!.lowerBound)) + "/Examples/iotd.example.yaml"
        let check = try ChildProcess([try ChildProcess.builtProduct("iotd"), "serve", "--config", example, "--check"])
        var output: [String] = []
        while let line = check.readLine() { output.append(line) }
        #expect(check.wait() == 0, "\(output)")
        #expect(output.contains { $0.hasPrefix("configuration OK") })
    }

    /// A configuration with a mistake is refused with a message naming the key.
    @Test func badConfigurationNamesTheKey() throws {
        let dir = TemporaryDirectory("iotd-config")
        let path = dir.path + "/bad.yaml"
        try "http: { port: 70000 }\n".write(toFile: path, atomically: false, encoding: .utf8)
        let check = try ChildProcess([try ChildProcess.builtProduct("iotd"), "serve", "--config", path, "--check"])
        while check.readLine() != nil {}
        #expect(check.wait() != 0)
    }
}
