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
}
