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
