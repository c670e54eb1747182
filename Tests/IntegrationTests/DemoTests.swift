import Foundation
import IoTTestSupport
import IoTTesting
import Testing

@Suite(.serialized) struct DemoTests {
    /// `iotd demo` starts with no configuration, serves `/healthz`, stores the simulated devices' data, and
    /// drains and exits 0 on SIGTERM.
    @Test func demoStartsServesStoresAndStopsCleanlyOnSIGTERM() async throws {
        try await onOwnThread {
            let dir = TemporaryDirectory("iotd-demo")
            let demo = try ChildProcess([
                try ChildProcess.builtProduct("iotd"), "demo", "--dir", dir.path, "--http-port", "0", "--api-port", "0",
                "--devices", "12", "--interval-ms", "200", "--quiet",
            ])
            var httpPort: Int?
            var apiPort: Int?
            var adminKey: String?
            while httpPort == nil || apiPort == nil, let line = demo.readLine() {
                if line.contains("device HTTP"), let p = line.split(separator: ":").last.flatMap({ Int($0) }) {
                    httpPort = p
                }
                if line.contains("management API") {
                    let words = line.split(separator: " ")
                    apiPort = words.first { $0.hasPrefix("http://") }.flatMap { $0.split(separator: ":").last }.flatMap
                    {
                        Int($0)
                    }
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
                let r = try client.request(
                    "GET", "/api/v1/tenants/demo/devices/thermometer-01/latest",
                    headers: ["Authorization": "Bearer \(key)"]
                )
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
}

@Suite struct ConfigurationTests {
    /// The environment the example's secrets come from.
    static let exampleSecrets = [
        "IOTD_ADMIN_API_KEY=example-admin-key-0123456789abcdef0123", "IOTD_PSK_GATEWAY_1=psk",
        "IOTD_MOSQUITTO_ADMIN_PASSWORD=pw", "IOTD_PLANT_A_PASSWORD=pw", "IOTD_WEBHOOK_SECRET=s",
        "IOTD_SMTP_PASSWORD=pw",
        "IOTD_DINGTALK_SECRET=s", "IOTD_SMS_AUTHORIZATION=Bearer x", "IOTD_EMQX_KEY=emqx-key",
    ]

    /// Runs `iotd serve --config path --check` with `environment`; its exit status and its output, stderr
    /// included.
    static func check(_ path: String, environment: [String] = []) throws -> (status: Int32, output: [String]) {
        let iotd = try ChildProcess.builtProduct("iotd")
        let check = try ChildProcess(
            ["/bin/sh", "-c", "exec \"$0\" serve --config \"$1\" --check 2>&1", iotd, path], environment: environment)
        var output: [String] = []
        while let line = check.readLine() { output.append(line) }
        return (check.wait(), output)
    }

    /// The documented example configuration is a valid configuration, and keeps no secret inline.
    @Test func exampleConfigurationIsValid() async throws {
        try await onOwnThread {
            let example =
                String(#filePath.prefix(upTo: #filePath.range(of: "/Tests/")!.lowerBound))
                + "/Examples/iotd.example.yaml"
            let (status, output) = try Self.check(example, environment: Self.exampleSecrets)
            #expect(status == 0, "\(output)")
            #expect(output.contains { $0.hasPrefix("configuration OK") })
            #expect(!output.contains { $0.hasPrefix("warning:") }, "\(output)")
            // Without its environment the check names the missing variable.
            let (missing, text) = try Self.check(example)
            #expect(missing != 0 && text.joined().contains("IOTD_PSK_GATEWAY_1"), "\(text)")
        }
    }

    /// Issue 17, item 11: secrets from files and the environment, warnings for inline ones, and the admin key's
    /// rules (at least 32 characters, never the example's placeholder).
    @Test func secretsComeFromFilesOrTheEnvironmentAndTheAdminKeyIsChecked() async throws {
        try await onOwnThread {
            let dir = TemporaryDirectory("iotd-secrets")
            let keyFile = dir.path + "/admin.key"
            let key = "file-admin-key-0123456789abcdef0123"
            try (key + "\n").write(toFile: keyFile, atomically: false, encoding: .utf8)
            func write(_ yaml: String) throws -> String {
                let path = dir.path + "/iotd-\(UUID().uuidString).yaml"
                try yaml.write(toFile: path, atomically: false, encoding: .utf8)
                return path
            }
            let clean = try write(
                """
                management: { port: 0, adminAPIKeyFile: \(keyFile) }
                coap: { port: 0, dtls: { port: 0, keys: { gw: { env: PSK_GW } } } }
                notifications:
                  channels:
                    - { name: hook, type: webhook, url: "https://example.com/h", secretEnv: HOOK_SECRET }
                """)
            let ok = try Self.check(clean, environment: ["PSK_GW=k1", "HOOK_SECRET=s1"])
            #expect(ok.status == 0 && !ok.output.contains { $0.hasPrefix("warning:") }, "\(ok.output)")
            let unset = try Self.check(clean, environment: ["PSK_GW=k1"])
            #expect(unset.status != 0 && unset.output.joined().contains("HOOK_SECRET"), "\(unset.output)")

            let inline = try write(
                """
                management: { port: 0, adminAPIKey: inline-admin-key-0123456789abcdef0123 }
                notifications:
                  channels:
                    - { name: hook, type: webhook, url: "https://example.com/h", secret: s1 }
                """)
            let warned = try Self.check(inline)
            #expect(warned.status == 0, "\(warned.output)")
            #expect(warned.output.contains { $0.hasPrefix("warning: management.adminAPIKey ") }, "\(warned.output)")
            #expect(
                warned.output.contains { $0.hasPrefix("warning: notifications.channels[0].secret ") },
                "\(warned.output)")

            for (yaml, expected) in [
                // Issue 17, item 13: a destination in the private network needs the outbound allow-list.
                (
                    "notifications: { channels: [{ name: h, type: webhook, url: \"http://127.0.0.1:9/x\" }] }",
                    "outbound allow-list"
                ),
                (
                    "notifications: { channels: [{ name: h, type: webhook, url: \"http://169.254.169.254/x\" }] }",
                    "link-local"
                ),
                (
                    "coap: { port: 0, observations: [{ id: o, uri: \"coap://10.0.0.7/t\", tenant: t, deviceUID: d }] }",
                    "outbound allow-list"
                ),
                // Issue 17: seconds and milliseconds that would overflow once converted are refused at start.
                ("auth: { blockSeconds: 9223372036854775807 }", "auth.blockSeconds"),
                ("http: { authenticationCacheMillis: 9223372036854775807 }", "http.authenticationCacheMillis"),
                (
                    "modbus: { devices: [{ tenant: t, uid: m, tcp: { host: 127.0.0.1, port: 502 }, timeoutMillis: 9223372036854775807, registers: [{ signal: s, address: 0, type: uint16 }] }] }",
                    "timeoutMillis"
                ),
                ("notifications: { maxAttempts: 0 }", "notifications.maxAttempts is 0; expected 1 to 1000"),
                ("storage: { retentionDays: 1e300 }", "storage.retentionDays"),
                ("storage: { rollupDelaySeconds: -1 }", "storage.rollupDelaySeconds"),
                ("storage: { cacheSizeKiB: -5 }", "storage.cacheSizeKiB: -5 is out of range"),
                ("journal: { segmentBytes: 9223372036854775807 }", "journal.segmentBytes"),
                ("ingest: { queueCapacityPoints: 0 }", "ingest.queueCapacityPoints"),
                ("http: { maxBodyBytes: 9223372036854775807 }", "http.maxBodyBytes"),
                ("auth: { passwordIterations: 9223372036854775807 }", "auth.passwordIterations"),
                (
                    "notifications: { channels: [{ name: h, type: inbox, burst: -1 }] }",
                    "notifications.channels[h].burst is -1"
                ),
                (
                    "notifications: { channels: [{ name: h, type: inbox, timeoutMillis: 9223372036854775807 }] }",
                    "channels[h].timeoutMillis"
                ),
                ("management: { adminAPIKey: short-key }", "at least 32"),
                ("management: { adminAPIKey: change-me-to-a-long-random-string }", "placeholder"),
                ("management: { adminAPIKeyFile: \(dir.path)/missing.key }", "cannot read"),
            ] {
                let refused = try Self.check(try write(yaml))
                #expect(refused.status != 0 && refused.output.joined().contains(expected), "\(yaml): \(refused.output)")
            }
            let short = try Self.check(
                clean, environment: ["PSK_GW=k1", "HOOK_SECRET=s1", "IOTD_ADMIN_API_KEY=too-short"])
            #expect(short.status != 0 && short.output.joined().contains("IOTD_ADMIN_API_KEY"), "\(short.output)")

            // A real start with the key from the file answers that key.
            let apiPort = ChildProcess.freeLoopbackPort()
            let serve = try write(
                """
                dataDirectory: \(dir.path)/data
                http: { port: \(ChildProcess.freeLoopbackPort()) }
                management: { port: \(apiPort), adminAPIKeyFile: \(keyFile) }
                logging: { level: error }
                """)
            let server = try IotdProcess.serve(config: serve, apiPort: apiPort)
            defer { server.stop(signal: SIGTERM) }
            let client = try LoopbackHTTPClient(port: apiPort)
            #expect(
                try client.request("GET", "/api/v1/tenants", headers: ["Authorization": "Bearer \(key)"]).status == 200)
            #expect(
                try client.request("GET", "/api/v1/tenants", headers: ["Authorization": "Bearer \(key)x"]).status == 401
            )
        }
    }

    /// Issue 20, item 8: `iotd serve` prints the same final accounting line on shutdown as `iotd demo`.
    @Test func serveReportsItsAccountingOnShutdown() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-accounting")
            try iotd.configure(
                iotd.preamble()
                    + "tenants: [{ id: lab, products: [{ id: p, signals: [{ name: s }] }], devices: [{ uid: d, product: p }] }]\n"
            )
            let server = try iotd.start()
            let token = try iotd.issueToken(tenant: "lab", device: "d")
            let device = try LoopbackHTTPClient(port: iotd.httpPort)
            for (i, body) in [#"{"s": 1}"#, #"{"s": 2}"#, #"{"s": 3}"#, #"{"nope": 4}"#].enumerated() {
                let r = try device.request("POST", "/api/v1/\(token)/telemetry", body: Array(body.utf8))
                #expect(r.status == (i < 3 ? 200 : 400), "\(body): \(r.status) \(r.text)")
            }
            #expect(iotd.stop(signal: SIGTERM) == 0)
            var last = ""
            while let line = server.readLine(timeoutSeconds: 10) { last = line }
            #expect(last == "stopped: received 4, stored 3, rejected 1, dropped 0, in flight 0", "\(last)")
        }
    }

    /// Issue 17, item 11: the data directory is readable by iotd's user only (0700, files 0600).
    @Test func theDataDirectoryIsPrivate() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-private")
            try iotd.configure(iotd.preamble() + "tenants: [{ id: lab }]\n")
            try iotd.start()
            iotd.stop(signal: SIGTERM)
            var checked = 0
            let data = iotd.dataDirectory
            let below = ((try? FileManager.default.subpathsOfDirectory(atPath: data)) ?? []).map { "/" + $0 }
            for relative in [""] + below {
                var st = stat()
                guard lstat(data + relative, &st) == 0 else { continue }
                let mode = st.st_mode & 0o777
                let isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
                #expect(
                    mode == (isDirectory ? 0o700 : 0o600),
                    "\(relative.isEmpty ? "data" : relative): \(String(mode, radix: 8))")
                checked += 1
            }
            #expect(checked >= 6, "system.sqlite, a tenant file, journal segments and their folders")
        }
    }

    /// A configuration with a mistake is refused with a message naming the key.
    @Test func badConfigurationNamesTheKey() async throws {
        try await onOwnThread {
            let dir = TemporaryDirectory("iotd-config")
            let path = dir.path + "/bad.yaml"
            try "http: { port: 70000 }\n".write(toFile: path, atomically: false, encoding: .utf8)
            let check = try ChildProcess([try ChildProcess.builtProduct("iotd"), "serve", "--config", path, "--check"])
            while check.readLine() != nil {}
            #expect(check.wait() != 0)
        }
    }

    /// A YAML 1.1 base-60 integer that overflows (found by the configuration fuzz target) is refused with a
    /// message; it used to stop iotd on a trap inside Yams (signal 4 or 5 instead of an exit status).
    @Test func aBase60NumberIsRefusedNotACrash() async throws {
        try await onOwnThread {
            let dir = TemporaryDirectory("iotd-config")
            let path = dir.path + "/base60.yaml"
            try "http: { port: -3333333333333333333:3 }\n".write(toFile: path, atomically: false, encoding: .utf8)
            // stderr into the pipe too: iotd writes its refusal there.
            let check = try ChildProcess([
                "/bin/sh", "-c", #"exec "$0" serve --config "$1" --check 2>&1"#, try ChildProcess.builtProduct("iotd"),
                path,
            ])
            var output: [String] = []
            while let line = check.readLine() { output.append(line) }
            let status = check.wait()
            #expect(status & 0x7f == 0, "iotd exited, not killed by a signal (status \(status))")
            #expect(status >> 8 == 78, "iotd refused the file with EX_CONFIG (78): \(status >> 8) \(output)")
            #expect(output.joined(separator: " ").contains("port"), "the message names the key: \(output)")
        }
    }

    /// Issue 22, item 7: `iotd --version` prints the release; a file that is not there is a configuration error
    /// too (exit 78, naming the file), for `iotd serve` as for `iotd keys rotate`.
    @Test func theVersionAndTheExitCodeOfAConfigurationError() async throws {
        try await onOwnThread {
            let version = try ChildProcess([try ChildProcess.builtProduct("iotd"), "--version"])
            let said = version.readLine() ?? ""
            #expect(version.wait() == 0)
            #expect(said.wholeMatch(of: /\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?/) != nil, "a release number: \(said)")
            for command in [["serve"], ["keys", "rotate"]] {
                let missing = try ChildProcess(
                    [
                        "/bin/sh", "-c", #"exec "$0" "$@" --config /nonexistent/iotd.yaml 2>&1"#,
                        try ChildProcess.builtProduct("iotd"),
                    ] + command)
                var output: [String] = []
                while let line = missing.readLine() { output.append(line) }
                #expect(missing.wait() >> 8 == 78, "\(command): \(output)")
                #expect(output.joined().contains("/nonexistent/iotd.yaml"), "\(command): \(output)")
            }
        }
    }
}
