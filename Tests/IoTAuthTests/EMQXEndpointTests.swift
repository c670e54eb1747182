import Foundation
import IoTCore
import IoTTestSupport
import IoTTesting
import Testing

/// The EMQX HTTP authenticator/authorizer endpoints over real HTTP on the management listener.
@Suite("EMQX HTTP auth endpoints")
struct EMQXEndpointTests {
    @Test func authenticationAllowsDeniesAndIgnores() async throws {
        try await PlatformHarness.with(ignoredUsernames: ["bridge"]) { platform in
            try await platform.addDevice("meter-1")
            try await platform.addDevice("meter-2")
            let t1 = try #require(try await platform.issueToken("meter-1").token)
            let t2 = try #require(try await platform.issueToken("meter-2").token)

            let allowed = try await platform.emqx(
                "auth", ["username": "meter-1", "password": t1, "clientid": "c1", "peerhost": "127.0.0.1"])
            #expect(allowed.status == 200 && allowed.result == "allow")
            #expect(allowed.json["is_superuser"] as? Bool == false)
            let acl = try #require(allowed.json["acl"] as? [[String: Any]])
            #expect(acl.first?["topic"] as? String == "devices/meter-1/telemetry")
            #expect(acl.first?["action"] as? String == "publish")
            #expect(acl.last?["permission"] as? String == "deny" && acl.last?["topic"] as? String == "#")

            // wrong password, another device's token, no password: deny
            #expect(try await platform.emqx("auth", ["username": "meter-1", "password": "nope"]).result == "deny")
            #expect(try await platform.emqx("auth", ["username": "meter-1", "password": t2]).result == "deny")
            #expect(try await platform.emqx("auth", ["username": "meter-1", "password": ""]).result == "deny")
            // an unknown device with a plausible name: deny (its password is no credential)
            #expect(try await platform.emqx("auth", ["username": "meter-9", "password": t1]).result == "deny")
            // not ours: no username, a name the template cannot produce, an ignored broker account
            #expect(try await platform.emqx("auth", ["password": t1]).result == "ignore")
            #expect(try await platform.emqx("auth", ["username": "a/b", "password": t1]).result == "ignore")
            #expect(try await platform.emqx("auth", ["username": "bridge", "password": "x"]).result == "ignore")
            // the broker must present its key
            #expect(try await platform.emqx("auth", ["username": "meter-1", "password": t1], key: nil).status == 401)
            #expect(
                try await platform.emqx("auth", ["username": "meter-1", "password": t1], key: PlatformHarness.adminKey)
                    .status == 401)
        }
    }

    @Test func formAndQueryRequestsAreUnderstood() async throws {
        try await PlatformHarness.with { platform in
            try await platform.addDevice("meter-1")
            let token = try #require(try await platform.issueToken("meter-1").token)
            let auth = ["Authorization": "Bearer \(PlatformHarness.brokerKey)"]
            let form = try await platform.request(
                "POST", "/broker/v1/emqx/auth",
                headers: auth.merging(["Content-Type": "application/x-www-form-urlencoded"]) { a, _ in a },
                body: "clientid=c1&username=meter-1&password=\(token)")
            #expect(form.status == 200 && form.text.contains(#""result":"allow""#))
            let query = try await platform.request(
                "GET", "/broker/v1/emqx/acl?username=meter-1&action=publish&topic=devices%2Fmeter-2%2Ftelemetry",
                headers: auth)
            #expect(query.status == 200 && query.text.contains(#""result":"deny""#))
            let bad = try await platform.request(
                "POST", "/broker/v1/emqx/acl",
                headers: auth.merging(["Content-Type": "application/json"]) { a, _ in a },
                body: #"{"username":"meter-1","action":"delete","topic":"x"}"#)
            #expect(bad.status == 400 && bad.text.contains("publish or subscribe"))
            let notJSON = try await platform.request(
                "POST", "/broker/v1/emqx/auth",
                headers: auth.merging(["Content-Type": "application/json"]) { a, _ in a },
                body: "username=meter-1")
            #expect(notJSON.status == 400)
        }
    }

    @Test func aclFollowsThePolicy() async throws {
        try await PlatformHarness.with { platform in
            try await platform.addDevice("meter-1")
            try await platform.addDevice("meter-2")
            _ = try await platform.issueToken("meter-1")
            _ = try await platform.issueToken("meter-2")
            func acl(_ user: String, _ action: String, _ topic: String) async throws -> String? {
                try await platform.emqx("acl", ["username": user, "clientid": user, "action": action, "topic": topic])
                    .result
            }
            #expect(try await acl("meter-1", "publish", "devices/meter-1/telemetry") == "allow")
            #expect(try await acl("meter-1", "publish", "devices/meter-2/telemetry") == "deny")
            #expect(try await acl("meter-1", "publish", "devices/meter-1/downlink/x") == "deny")
            #expect(try await acl("meter-1", "subscribe", "devices/meter-1/downlink/#") == "allow")
            #expect(try await acl("meter-1", "subscribe", "$share/g/devices/meter-1/downlink/+") == "allow")
            #expect(try await acl("meter-1", "subscribe", "devices/+/downlink/#") == "deny")
            #expect(try await acl("meter-1", "subscribe", "#") == "deny")
            #expect(try await acl("meter-9", "publish", "devices/meter-9/telemetry") == "deny")  // no such device
            #expect(try await acl("", "publish", "devices/meter-1/telemetry") == "ignore")
            #expect(try await acl("a/b", "publish", "devices/meter-1/telemetry") == "ignore")
        }
    }

    @Test func revocationAndDeletionDenyAtOnce() async throws {
        try await PlatformHarness.with { platform in
            try await platform.addDevice("meter-1")
            let token = try #require(try await platform.issueToken("meter-1").token)
            let creds: [String: Any] = ["username": "meter-1", "password": token, "clientid": "meter-1"]
            let publish: [String: Any] = [
                "username": "meter-1", "action": "publish", "topic": "devices/meter-1/telemetry",
            ]
            #expect(try await platform.emqx("auth", creds).result == "allow")
            #expect(try await platform.emqx("acl", publish).result == "allow")

            #expect(try await platform.api("DELETE", "/api/v1/tenants/acme/devices/meter-1/tokens").status == 200)
            #expect(try await platform.emqx("auth", creds).result == "deny")
            // a connection opened before the revocation is refused on its next publish
            #expect(try await platform.emqx("acl", publish).result == "deny")

            let fresh = try #require(try await platform.issueToken("meter-1").token)
            #expect(try await platform.emqx("auth", ["username": "meter-1", "password": fresh]).result == "allow")
            #expect(try await platform.emqx("acl", publish).result == "allow")
            #expect(try await platform.api("DELETE", "/api/v1/tenants/acme/devices/meter-1").status == 204)
            #expect(try await platform.emqx("auth", ["username": "meter-1", "password": fresh]).result == "deny")
            #expect(try await platform.emqx("acl", publish).result == "deny")
        }
    }

    @Test func tenantsAreKeptApart() async throws {
        let policy = BrokerAccountPolicy(
            usernameTemplate: "{tenant}/{uid}", publishTopics: ["{tenant}/devices/{uid}/telemetry"],
            subscribeTopics: ["{tenant}/devices/{uid}/downlink/#"])
        try await PlatformHarness.with(policy: policy, tenants: ["acme", "globex"]) { platform in
            try await platform.addDevice("meter-1", tenant: "acme")
            try await platform.addDevice("meter-1", tenant: "globex")
            let acme = try #require(try await platform.issueToken("meter-1", tenant: "acme").token)
            #expect(try await platform.emqx("auth", ["username": "acme/meter-1", "password": acme]).result == "allow")
            #expect(try await platform.emqx("auth", ["username": "globex/meter-1", "password": acme]).result == "deny")
            #expect(
                try await platform.emqx(
                    "acl", ["username": "acme/meter-1", "action": "publish", "topic": "acme/devices/meter-1/telemetry"]
                ).result == "allow")
            #expect(
                try await platform.emqx(
                    "acl",
                    ["username": "acme/meter-1", "action": "publish", "topic": "globex/devices/meter-1/telemetry"]
                ).result == "deny")
            // globex/meter-1 has no token: refused even on its own topic
            #expect(
                try await platform.emqx(
                    "acl",
                    ["username": "globex/meter-1", "action": "publish", "topic": "globex/devices/meter-1/telemetry"]
                ).result == "deny")
        }
    }

    @Test func sameUIDInTwoTenantsWithoutTenantInUsernameIsRefused() async throws {
        try await PlatformHarness.with(tenants: ["acme", "globex"]) { platform in
            try await platform.addDevice("meter-1", tenant: "acme")
            try await platform.addDevice("meter-1", tenant: "globex")
            let token = try #require(try await platform.issueToken("meter-1", tenant: "acme").token)
            // authentication knows the tenant from the token…
            #expect(try await platform.emqx("auth", ["username": "meter-1", "password": token]).result == "allow")
            // …but the authorizer only has the username, which is ambiguous: deny rather than guess
            #expect(
                try await platform.emqx(
                    "acl", ["username": "meter-1", "action": "publish", "topic": "devices/meter-1/telemetry"]
                ).result == "deny")
        }
    }
}
