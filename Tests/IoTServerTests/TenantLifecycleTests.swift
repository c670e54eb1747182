import Foundation
import HTTPTypes
import IoTCore
import IoTServer
import IoTStorage
import IoTTesting
import Testing

/// Issue 19, item 5, through the router: a tenant is changed, suspended (its users and keys get 403, saying
/// so) and resumed, its quotas answer 403 naming the quota, and it is deleted with its users, keys and
/// devices' credentials.
@Suite struct TenantLifecycleTests {
    @Test func aSuspendedTenantsUsersAndKeysAreRefusedUntilItIsResumed() async throws {
        let f = try await IdentityTests.Fixture()
        try await f.run { c in
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "olga", "roles": ["operator"], "password": "operator pass 123"}"#)
            let (access, _) = try await c.login("olga", "operator pass 123")
            let key = try await c.admin(
                .post, "/api/v1/tenants/acme/api-keys", #"{"name": "k", "permissions": ["device:read"]}"#)
            let apiKey = try #require(IdentityTests.field("key", in: key.text) as? String)
            let suspended = try await c.admin(
                .patch, "/api/v1/tenants/acme", #"{"status": "suspended", "name": "ACME Corp"}"#)
            #expect(suspended.status == .ok && suspended.text.contains(#""status":"suspended""#), "\(suspended.text)")
            for credential in [access, apiKey] {
                let refused = try await c.call(.get, "/api/v1/tenants/acme/devices", credential: credential)
                #expect(refused.status == .forbidden && refused.text.contains("suspended"), "\(refused.text)")
            }
            let login = try await c.call(
                .post, "/api/v1/auth/login", #"{"username": "olga", "password": "operator pass 123"}"#)
            #expect(login.status == .forbidden && login.text.contains("suspended"), "\(login.text)")
            #expect(
                try await c.admin(.get, "/api/v1/tenants/acme/devices").status == .ok, "the platform still works on it")
            #expect(try await c.admin(.patch, "/api/v1/tenants/acme", #"{"status": "active"}"#).status == .ok)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access).status == .ok)
            #expect(try await f.registry.tenant("acme")?.name == "ACME Corp")
            let bad = try await c.admin(.patch, "/api/v1/tenants/acme", #"{"quotas": {"devices": -1}}"#)
            #expect(bad.status == .badRequest && bad.text.contains("quotas.devices"), "\(bad.text)")
        }
    }

    @Test func quotasAreAnsweredWithTheirName() async throws {
        let f = try await IdentityTests.Fixture()
        try await f.run { c in
            #expect(
                try await c.admin(.patch, "/api/v1/tenants/acme", #"{"quotas": {"devices": 2, "signals": 2}}"#).status
                    == .ok)
            // acme has t-1 already.
            #expect(
                try await c.admin(.post, "/api/v1/tenants/acme/devices", #"{"uid": "t-2", "product": "thermo"}"#).status
                    == .created)
            let over = try await c.admin(.post, "/api/v1/tenants/acme/devices", #"{"uid": "t-3", "product": "thermo"}"#)
            #expect(over.status == .forbidden && over.text.contains("quota devices (2)"), "\(over.text)")
            let signals = try await c.admin(
                .post, "/api/v1/tenants/acme/products",
                #"{"id": "big", "signals": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}"#)
            #expect(signals.status == .forbidden && signals.text.contains("quota signals (2)"), "\(signals.text)")
            #expect(
                try await c.admin(
                    .post, "/api/v1/tenants/acme/products", #"{"id": "small", "signals": [{"name": "a"}]}"#
                )
                .status == .created)
            #expect(try await f.registry.devices(.tenant("acme"), product: nil).count == 2, "nothing over the quota")
        }
    }

    @Test func deletingATenantRemovesItsUsersKeysCredentialsAndData() async throws {
        let f = try await IdentityTests.Fixture()
        try await f.run { c in
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "olga", "roles": ["operator"], "password": "operator pass 123"}"#)
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/api-keys", #"{"name": "k", "permissions": ["device:read"]}"#)
            _ = try await c.admin(
                .post, "/api/v1/tenants/globex/users",
                #"{"username": "gina", "roles": ["viewer"], "password": "globex viewer 12"}"#)
            let token = try await c.admin(.post, "/api/v1/tenants/acme/devices/t-1/tokens", "{}")
            #expect(token.status == .created, "\(token.text)")
            #expect(try await f.tokens.tokens(of: DeviceIdentity(tenant: "acme", deviceUID: "t-1")).count == 1)
            #expect(try await c.admin(.delete, "/api/v1/tenants/acme").status == .noContent)
            #expect(
                try await f.tokens.tokens(of: DeviceIdentity(tenant: "acme", deviceUID: "t-1")).isEmpty,
                "the devices' tokens are revoked")
            #expect(try await f.registry.tenant("acme") == nil)
            #expect(try await f.store.user("olga") == nil, "the tenant's users are gone")
            #expect(try await f.store.secrets(kind: .apiKey, tenant: "acme").isEmpty, "and its keys")
            #expect(try await f.store.user("gina") != nil, "another tenant's users stay")
            let login = try await c.call(
                .post, "/api/v1/auth/login", #"{"username": "olga", "password": "operator pass 123"}"#)
            #expect(login.status == .unauthorized)
            #expect(try await c.admin(.get, "/api/v1/tenants/acme/devices").status == .notFound)
            #expect(try await c.admin(.delete, "/api/v1/tenants/acme").status == .notFound)
            // Made again, the tenant starts empty.
            #expect(try await c.admin(.post, "/api/v1/tenants", #"{"id": "acme"}"#).status == .created)
            let devices = try await c.admin(.get, "/api/v1/tenants/acme/devices")
            #expect(devices.status == .ok && devices.text == "[]", "\(devices.text)")
        }
    }
}
