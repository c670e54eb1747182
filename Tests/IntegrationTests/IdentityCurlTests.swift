import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 19, driven from outside as the README tells a user: curl against `iotd serve`. The bootstrap admin
/// key makes a tenant user; the user signs in, works within their role and tenant, makes an API key of their
/// own; `iotd keys rotate` changes the signing key while iotd runs; the audit log comes out as CSV.
@Suite(.serialized) struct IdentityCurlTests {
    /// Runs curl; its HTTP status and body.
    static func curl(_ method: String, _ url: String, _ body: String? = nil, headers: [String] = []) throws -> (
        status: Int, text: String
    ) {
        var arguments = ["/usr/bin/env", "curl", "-sS", "-X", method, "-w", "\n%{http_code}\n", url]
        for h in headers { arguments += ["-H", h] }
        if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", body] }
        let process = try ChildProcess(arguments)
        var lines: [String] = []
        while let line = process.readLine(timeoutSeconds: 20) { lines.append(line) }
        #expect(process.wait(timeoutSeconds: 20) == 0, "curl \(arguments): \(lines)")
        let status = Int(lines.popLast() ?? "") ?? 0
        return (status, lines.joined(separator: "\n"))
    }

    static func field(_ key: String, _ text: String) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?[key] as? String
    }

    @Test func aUserSignsInWithCurlWorksWithinTheirRoleAndSurvivesAKeyRotation() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-identity")
            try iotd.configure(
                iotd.preamble()
                    + """
                    identity: { bcryptCost: 6 }
                    tenants:
                      - id: acme
                        products: [{ id: thermo, signals: [{ name: temp }] }]
                        devices: [{ uid: t-1, product: thermo }]
                      - id: globex
                    """)
            try iotd.start()
            defer { iotd.stop() }
            let base = "http://127.0.0.1:\(iotd.apiPort)"
            let admin = "X-API-Key: \(IotdProcess.adminKey)"
            let made = try Self.curl(
                "POST", base + "/api/v1/tenants/acme/users",
                #"{"username": "olga", "roles": ["operator"], "password": "correct horse battery"}"#, headers: [admin])
            #expect(made.status == 201, "\(made.text)")
            let login = try Self.curl(
                "POST", base + "/api/v1/auth/login", #"{"username": "olga", "password": "correct horse battery"}"#)
            #expect(login.status == 200, "\(login.text)")
            let access = try #require(Self.field("accessToken", login.text))
            let bearer = "Authorization: Bearer \(access)"
            let devices = try Self.curl("GET", base + "/api/v1/tenants/acme/devices", headers: [bearer])
            #expect(devices.status == 200 && devices.text.contains("t-1"), "\(devices.text)")
            let denied = try Self.curl("POST", base + "/api/v1/tenants", #"{"id": "evil"}"#, headers: [bearer])
            #expect(denied.status == 403 && denied.text.contains("tenant:write"), "\(denied.text)")
            #expect(try Self.curl("GET", base + "/api/v1/tenants/globex/devices", headers: [bearer]).status == 403)
            let key = try Self.curl(
                "POST", base + "/api/v1/auth/api-keys", #"{"name": "script", "permissions": ["data:read"]}"#,
                headers: [bearer])
            #expect(key.status == 201, "\(key.text)")
            let apiKey = try #require(Self.field("key", key.text))
            #expect(
                try Self.curl(
                    "GET", base + "/api/v1/tenants/acme/devices/t-1/latest", headers: ["X-API-Key: \(apiKey)"]
                )
                .status == 200)
            #expect(
                try Self.curl("GET", base + "/api/v1/tenants/acme/devices", headers: ["X-API-Key: \(apiKey)"]).status
                    == 403, "the key holds data:read only")
            // A new signing key while iotd runs: the earlier token stays valid, new ones use the new key.
            let rotate = try ChildProcess([
                try ChildProcess.builtProduct("iotd"), "keys", "rotate", "--config", iotd.configPath,
            ])
            let said = rotate.readLine(timeoutSeconds: 20) ?? ""
            #expect(rotate.wait(timeoutSeconds: 20) == 0 && said.hasPrefix("signing key "), "\(said)")
            usleep(1_200_000)
            #expect(try Self.curl("GET", base + "/api/v1/tenants/acme/devices", headers: [bearer]).status == 200)
            let again = try Self.curl(
                "POST", base + "/api/v1/auth/login", #"{"username": "olga", "password": "correct horse battery"}"#)
            let fresh = try #require(Self.field("accessToken", again.text))
            #expect(fresh != access)
            #expect(
                try Self.curl("GET", base + "/api/v1/tenants/acme/devices", headers: ["Authorization: Bearer \(fresh)"])
                    .status == 200)
            let wrong = try Self.curl(
                "POST", base + "/api/v1/auth/login", #"{"username": "olga", "password": "not it at all"}"#)
            #expect(wrong.status == 401)
            let csv = try Self.curl("GET", base + "/api/v1/audit?format=csv", headers: [admin])
            #expect(csv.status == 200 && csv.text.hasPrefix("id,time,actor,tenant,action,target,status,client"))
            #expect(csv.text.contains(",olga,acme,POST /api/v1/tenants,/api/v1/tenants,403,127.0.0.1"), "\(csv.text)")
            #expect(csv.text.contains(",olga,acme,auth.login,olga,401,127.0.0.1"), "\(csv.text)")
        }
    }

    @Test func aDeletedTenantsFileCredentialsAndUsersAreGone() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-tenant-delete")
            try iotd.configure(
                iotd.preamble()
                    + """
                    identity: { bcryptCost: 6 }
                    tenants:
                      - id: doomed
                        products: [{ id: thermo, signals: [{ name: temp }] }]
                        devices: [{ uid: t-1, product: thermo }]
                      - id: kept
                        products: [{ id: thermo, signals: [{ name: temp }] }]
                        devices: [{ uid: k-1, product: thermo }]
                    """)
            try iotd.start()
            defer { iotd.stop() }
            let api = "http://127.0.0.1:\(iotd.apiPort)"
            let ingest = "http://127.0.0.1:\(iotd.httpPort)"
            let admin = "X-API-Key: \(IotdProcess.adminKey)"
            let issued = try Self.curl(
                "POST", api + "/api/v1/tenants/doomed/devices/t-1/tokens", "{}", headers: [admin])
            let token = try #require(Self.field("token", issued.text), "\(issued.text)")
            #expect(
                try Self.curl(
                    "POST", ingest + "/api/v1/devices/t-1/telemetry", #"{"temp": 21}"#,
                    headers: ["Authorization: Bearer \(token)"]
                ).status == 200)
            _ = try Self.curl(
                "POST", api + "/api/v1/tenants/doomed/users",
                #"{"username": "dora", "roles": ["viewer"], "password": "doomed viewer 12"}"#, headers: [admin])
            let file = iotd.dataDirectory + "/tenants/doomed.sqlite"
            #expect(FileManager.default.fileExists(atPath: file))
            // Suspended first: the device is refused, saying so.
            _ = try Self.curl("PATCH", api + "/api/v1/tenants/doomed", #"{"status": "suspended"}"#, headers: [admin])
            let refused = try Self.curl(
                "POST", ingest + "/api/v1/devices/t-1/telemetry", #"{"temp": 22}"#,
                headers: ["Authorization: Bearer \(token)"])
            #expect(refused.status == 403 && refused.text.contains("suspended"), "\(refused.text)")
            let deleted = try Self.curl("DELETE", api + "/api/v1/tenants/doomed", headers: [admin])
            #expect(deleted.status == 204, "\(deleted.text)")
            #expect(!FileManager.default.fileExists(atPath: file), "the tenant's database file is gone")
            #expect(!FileManager.default.fileExists(atPath: file + "-wal"))
            usleep(1_100_000)  // the gateway's credential cache (ingest.authenticationCacheMillis, 1 s) runs out
            let after = try Self.curl(
                "POST", ingest + "/api/v1/devices/t-1/telemetry", #"{"temp": 23}"#,
                headers: ["Authorization: Bearer \(token)"])
            #expect(after.status == 401, "the device's token is revoked: \(after.text)")
            let login = try Self.curl(
                "POST", api + "/api/v1/auth/login", #"{"username": "dora", "password": "doomed viewer 12"}"#)
            #expect(login.status == 401, "the tenant's users are gone: \(login.text)")
            let tenants = try Self.curl("GET", api + "/api/v1/tenants", headers: [admin])
            #expect(tenants.text.contains("kept") && !tenants.text.contains("doomed"), "\(tenants.text)")
            #expect(try Self.curl("GET", api + "/api/v1/tenants/kept/devices/k-1", headers: [admin]).status == 200)
        }
    }
}

/// Issue 19, items 3 and 8: a user with a department sees, on every read path, the devices of their department
/// and nothing of the others, and writes only there; driven with curl and a WebSocket client against `iotd`.
@Suite(.serialized) struct DataScopeCurlTests {
    static let peerScript: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)
        return parts.joined(separator: "/") + "/IoTHTTPTests/Peers/peer.py"
    }()

    @Test func aUserOfOneDepartmentSeesAndChangesOnlyItsDevicesOnEveryPath() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-scope")
            let ws = ChildProcess.freeLoopbackPort()
            try iotd.configure(
                iotd.preamble()
                    + """
                    identity: { bcryptCost: 6 }
                    websocket: { port: \(ws) }
                    tenants:
                      - id: acme
                        products: [{ id: thermo, signals: [{ name: temp }] }]
                        devices: [{ uid: n-1, product: thermo }, { uid: s-1, product: thermo }]
                        rules:
                          - { kind: range, id: hot, devices: { product: thermo }, signal: temp, max: 50,
                              alarmWhen: outside, severity: major, debounce: { count: 1 }, hysteresis: 0 }
                        statistics:
                          - { id: north-mean, cron: "* * * * * *", timeZone: UTC, leadMillis: 3600000, catchUp: { policy: none },
                              parameters: [{ name: m, device: n-1, signal: temp, reducer: mean }] }
                          - { id: south-mean, cron: "* * * * * *", timeZone: UTC, leadMillis: 3600000, catchUp: { policy: none },
                              parameters: [{ name: m, device: s-1, signal: temp, reducer: mean }] }
                    """)
            try iotd.start()
            defer { iotd.stop() }
            let api = "http://127.0.0.1:\(iotd.apiPort)"
            let tenant = api + "/api/v1/tenants/acme"
            let admin = "X-API-Key: \(IotdProcess.adminKey)"
            for department in ["north", "south"] {
                let made = try IdentityCurlTests.curl(
                    "POST", tenant + "/departments", #"{"id": "\#(department)"}"#, headers: [admin])
                #expect(made.status == 201, "\(made.text)")
            }
            for (uid, department) in [("n-1", "north"), ("s-1", "south")] {
                let moved = try IdentityCurlTests.curl(
                    "PUT", tenant + "/devices/\(uid)", #"{"product": "thermo", "department": "\#(department)"}"#,
                    headers: [admin])
                #expect(moved.status == 200, "\(moved.text)")
            }
            for (user, role) in [("nora", "operator"), ("vic", "viewer")] {
                let made = try IdentityCurlTests.curl(
                    "POST", tenant + "/users",
                    #"{"username": "\#(user)", "roles": ["\#(role)"], "department": "north", "password": "north side pass 1"}"#,
                    headers: [admin])
                #expect(made.status == 201, "\(made.text)")
            }
            func login(_ user: String) throws -> String {
                let signedIn = try IdentityCurlTests.curl(
                    "POST", api + "/api/v1/auth/login", #"{"username": "\#(user)", "password": "north side pass 1"}"#)
                return try #require(IdentityCurlTests.field("accessToken", signedIn.text), "\(signedIn.text)")
            }
            let nora = "Authorization: Bearer \(try login("nora"))"
            let vic = "Authorization: Bearer \(try login("vic"))"

            // The live feed, as nora, before any point: s-1's points are sent first and must not reach her.
            let live = try ChildProcess([
                "/usr/bin/env", "python3", "-u", Self.peerScript, "ws",
                "ws://127.0.0.1:\(iotd.apiPort)/api/v1/tenants/acme/live",
                "--token", String(nora.dropFirst("Authorization: Bearer ".count)), "--wait", "4",
            ])
            defer { live.stop(signal: SIGKILL) }
            #expect(live.readLine(timeoutSeconds: 20) == "CONNECTED")
            #expect(live.readLine(timeoutSeconds: 20) == "READY")
            usleep(200_000)  // the subscription is made after the upgrade
            for uid in ["s-1", "n-1"] {
                let issued = try IdentityCurlTests.curl(
                    "POST", tenant + "/devices/\(uid)/tokens", "{}", headers: [admin])
                let token = try #require(IdentityCurlTests.field("token", issued.text), "\(issued.text)")
                let sent = try IdentityCurlTests.curl(
                    "POST", "http://127.0.0.1:\(iotd.httpPort)/api/v1/devices/\(uid)/telemetry", #"{"temp": 99}"#,
                    headers: ["Authorization: Bearer \(token)"])
                #expect(sent.status == 200, "\(sent.text)")
            }
            var frames: [String] = []
            while let line = live.readLine(timeoutSeconds: 20), line != "TIMEOUT" {
                if line.hasPrefix("FRAME") { frames.append(line) }
            }
            #expect(frames.contains { $0.contains(#""device":"n-1""#) }, "n-1's point reached nora: \(frames)")
            #expect(!frames.contains { $0.contains("s-1") }, "s-1's point did not: \(frames)")

            // Wait for both alarms and a statistics fire over each device.
            var alarms = ""
            for _ in 0..<100 {
                alarms = try IdentityCurlTests.curl("GET", tenant + "/alarms", headers: [admin]).text
                let south = try IdentityCurlTests.curl(
                    "GET", tenant + "/statistics/jobs/south-mean/results", headers: [admin])
                if alarms.contains("n-1") && alarms.contains("s-1") && south.text.contains("99") { break }
                usleep(100_000)
            }
            let all = (try? JSONSerialization.jsonObject(with: Data(alarms.utf8))) as? [[String: Any]] ?? []
            let southAlarm = try #require(
                all.first { $0["originator"] as? String == "s-1" }?["id"] as? String, "s-1's alarm: \(alarms)")

            func get(_ path: String, _ who: String = nora) throws -> (status: Int, text: String) {
                try IdentityCurlTests.curl("GET", tenant + path, headers: [who])
            }
            // Device list and device.
            let devices = try get("/devices")
            #expect(
                devices.status == 200 && devices.text.contains("n-1") && !devices.text.contains("s-1"),
                "\(devices.text)")
            #expect(try get("/devices/s-1").status == 404)
            // Latest and series, raw and aggregated; the export (CSV, which needs data:export).
            #expect(try get("/devices/n-1/latest").text.contains("99"))
            #expect(try get("/devices/s-1/latest").status == 404)
            #expect(try get("/devices/n-1/series/temp").text.contains("99"))
            #expect(try get("/devices/s-1/series/temp").status == 404)
            #expect(try get("/devices/s-1/series/temp?agg=mean").status == 404)
            let csv = try get("/devices/n-1/series/temp?format=csv")
            #expect(csv.status == 200 && csv.text.hasPrefix("time,value"), "\(csv.text)")
            #expect(try get("/devices/s-1/series/temp?format=csv").status == 404)
            let viewerCSV = try get("/devices/n-1/series/temp?format=csv", vic)
            #expect(viewerCSV.status == 403 && viewerCSV.text.contains("data:export"), "\(viewerCSV.text)")
            #expect(try get("/devices/n-1/series/temp", vic).status == 200)
            // Alarms: listed, read and acknowledged only within the scope.
            let seen = try get("/alarms")
            #expect(seen.status == 200 && seen.text.contains("n-1") && !seen.text.contains("s-1"), "\(seen.text)")
            #expect(try get("/alarms/\(southAlarm)").status == 404)
            #expect(
                try IdentityCurlTests.curl("POST", tenant + "/alarms/\(southAlarm)/ack", headers: [nora]).status == 404)
            let untouched = try get("/alarms/\(southAlarm)", admin)
            #expect(
                untouched.text.contains(#""acknowledged":false"#), "s-1's alarm is not acknowledged: \(untouched.text)")
            // Statistics jobs and their results.
            let jobs = try get("/statistics/jobs")
            #expect(jobs.text.contains("north-mean") && !jobs.text.contains("south-mean"), "\(jobs.text)")
            #expect(try get("/statistics/jobs/north-mean/results").status == 200)
            #expect(try get("/statistics/jobs/south-mean/results").status == 404)
            // Downlink: outside the scope 404; inside it, 409 (the device has no live connection).
            #expect(
                try IdentityCurlTests.curl("POST", tenant + "/devices/s-1/downlink", #"{"x": 1}"#, headers: [nora])
                    .status == 404)
            #expect(
                try IdentityCurlTests.curl("POST", tenant + "/devices/n-1/downlink", #"{"x": 1}"#, headers: [nora])
                    .status == 409)
            // Writes: nothing outside the scope; a new device goes into her department.
            #expect(
                try IdentityCurlTests.curl("PUT", tenant + "/devices/s-1", #"{"product": "thermo"}"#, headers: [nora])
                    .status
                    == 404)
            #expect(try IdentityCurlTests.curl("DELETE", tenant + "/devices/s-1", headers: [nora]).status == 404)
            #expect(
                try IdentityCurlTests.curl("POST", tenant + "/devices/s-1/tokens", "{}", headers: [nora]).status == 404)
            let made = try IdentityCurlTests.curl(
                "POST", tenant + "/devices", #"{"uid": "n-2", "product": "thermo"}"#, headers: [nora])
            #expect(made.status == 201 && made.text.contains(#""department":"north""#), "\(made.text)")
            #expect(try get("/devices/n-2").status == 200, "she sees the device she made at once")
            let elsewhere = try IdentityCurlTests.curl(
                "POST", tenant + "/devices", #"{"uid": "x-1", "product": "thermo", "department": "south"}"#,
                headers: [nora])
            #expect(elsewhere.status == 403 && elsewhere.text.contains("south"), "\(elsewhere.text)")
            let moved = try IdentityCurlTests.curl(
                "PUT", tenant + "/devices/n-1", #"{"product": "thermo", "department": "south"}"#, headers: [nora])
            #expect(moved.status == 403, "\(moved.text)")
            let taken = try IdentityCurlTests.curl(
                "POST", tenant + "/devices", #"{"uid": "s-1", "product": "thermo"}"#, headers: [nora])
            #expect(taken.status == 409, "a device outside her scope is not replaced: \(taken.text)")
            let south = try IdentityCurlTests.curl("GET", tenant + "/devices/s-1", headers: [admin])
            #expect(south.text.contains(#""department":"south""#), "s-1 is untouched: \(south.text)")
        }
    }
}
