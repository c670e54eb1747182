import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IoTCore
import IoTRules
import IoTServer
import IoTStorage
import IoTTesting
import Logging
import NIOCore
import Testing

/// Issue 19: users, sign-in, tokens, roles and permissions, API keys and the audit log, through the
/// management router with no socket (HummingbirdTesting's `.router` mode) over in-memory stores.
@Suite struct IdentityTests {
    static let adminKey = "identity-test-admin-key"

    /// A server with identity (bcrypt cost 4: fast), a tenant `acme` with device `t-1`, and tenant `globex`.
    struct Fixture {
        let registry = InMemoryRegistryStore()
        let store = InMemoryIdentityStore()
        let audit = InMemoryAuditStore()
        let outbox = InMemoryOutbox()
        let clock = ManualClock(now: 1_700_000_000_000)
        let keys: SigningKeys
        let tokens = TokenAuthenticator(credentials: InMemoryCredentialStore())
        let identity: IdentityService
        let server: ManagementServer

        init(keys: SigningKeys = SigningKeys(), configuration: IdentityService.Configuration = .init()) async throws {
            self.keys = keys
            var c = configuration
            c.bcryptCost = 4
            c.linkBaseURL = "https://iot.example.com/console/"
            let router = NotificationRouter(
                outbox: outbox, registry: registry, clock: clock, logger: Logger(label: "t"))
            identity = IdentityService(
                configuration: c, keys: keys, store: store, audit: audit,
                notifier: OutboxAccountNotifier(router: router, channel: "email", clock: clock), registry: registry,
                clock: clock)
            server = ManagementServer(
                configuration: .init(port: 0, adminAPIKey: IdentityTests.adminKey), registry: registry,
                points: InMemoryPointStore(), tokens: tokens, ingestor: nil, prometheus: nil, identity: identity)
            for tenant in ["acme", "globex"] {
                try await registry.saveTenant(Tenant(id: TenantID(tenant)))
                try await registry.saveProduct(.tenant(TenantID(tenant)), Product(id: "thermo"))
            }
            try await registry.saveDevice(.tenant("acme"), Device(uid: "t-1", product: "thermo"))
        }

        func run(_ body: @Sendable (Client) async throws -> Void) async throws {
            let app = Application(router: server.makeRouter())
            try await app.test(.router) { client in try await body(Client(client: client)) }
        }
    }

    struct Client {
        let client: any TestClientProtocol

        @discardableResult
        func call(
            _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, credential: String? = nil,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws -> (status: HTTPResponse.Status, text: String) {
            var headers: HTTPFields = [:]
            if let credential { headers[.authorization] = "Bearer \(credential)" }
            if body != nil { headers[.contentType] = "application/json" }
            return try await client.execute(
                uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }
            ) { response in (response.status, String(buffer: response.body)) }
        }

        func admin(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil) async throws -> (
            status: HTTPResponse.Status, text: String
        ) {
            try await call(method, uri, body, credential: IdentityTests.adminKey)
        }

        /// Signs in; the access and refresh tokens.
        func login(_ username: String, _ password: String) async throws -> (access: String, refresh: String) {
            let r = try await call(
                .post, "/api/v1/auth/login", #"{"username": "\#(username)", "password": "\#(password)"}"#)
            #expect(r.status == .ok, "\(r.text)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(r.text.utf8)) as? [String: Any])
            return (try #require(object["accessToken"] as? String), try #require(object["refreshToken"] as? String))
        }
    }

    static func field(_ key: String, in text: String) -> Any? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?[key]
    }

    @Test func aUserSignsInWorksWithinTheirRolesAndTenantRefreshesAndSignsOut() async throws {
        let f = try await Fixture()
        try await f.run { c in
            let made = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "olga", "roles": ["operator"], "password": "correct horse 42"}"#)
            #expect(made.status == .created, "\(made.text)")
            #expect(!made.text.contains("$2"), "no password hash in the answer: \(made.text)")
            let (access, refresh) = try await c.login("olga", "correct horse 42")
            #expect(access.split(separator: ".").count == 3, "a JWT")
            // Within the operator role and tenant acme.
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access).status == .ok)
            #expect(
                try await c.call(
                    .post, "/api/v1/tenants/acme/devices", #"{"uid": "t-2", "product": "thermo"}"#, credential: access
                )
                .status == .created)
            // Beyond the role: 403 naming the permission.
            let tenantWrite = try await c.call(.post, "/api/v1/tenants", #"{"id": "evil"}"#, credential: access)
            #expect(tenantWrite.status == .forbidden)
            #expect(tenantWrite.text.contains("tenant:write"), "\(tenantWrite.text)")
            let userAdmin = try await c.call(.get, "/api/v1/tenants/acme/users", credential: access)
            #expect(userAdmin.status == .forbidden && userAdmin.text.contains("user:read"), "\(userAdmin.text)")
            // Another tenant: 403; the tenant list shows their own only.
            let other = try await c.call(.get, "/api/v1/tenants/globex/devices", credential: access)
            #expect(other.status == .forbidden && other.text.contains("acme"), "\(other.text)")
            let tenants = try await c.call(.get, "/api/v1/tenants", credential: access)
            #expect(tenants.text.contains("acme") && !tenants.text.contains("globex"), "\(tenants.text)")
            // Who am I.
            let me = try await c.call(.get, "/api/v1/auth/me", credential: access)
            #expect(me.status == .ok && me.text.contains(#""actor":"olga""#) && me.text.contains("alarm:ack"))
            // A refresh token is used once.
            let refreshed = try await c.call(.post, "/api/v1/auth/refresh", #"{"refreshToken": "\#(refresh)"}"#)
            #expect(refreshed.status == .ok, "\(refreshed.text)")
            let again = try await c.call(.post, "/api/v1/auth/refresh", #"{"refreshToken": "\#(refresh)"}"#)
            #expect(again.status == .unauthorized, "\(again.text)")
            let next = try #require(Self.field("refreshToken", in: refreshed.text) as? String)
            #expect(
                try await c.call(.post, "/api/v1/auth/logout", #"{"refreshToken": "\#(next)"}"#).status == .noContent)
            #expect(
                try await c.call(.post, "/api/v1/auth/refresh", #"{"refreshToken": "\#(next)"}"#).status
                    == .unauthorized,
                "signed out")
            // A garbage or tampered token is 401.
            #expect(try await c.call(.get, "/api/v1/tenants", credential: "a.b.c").status == .unauthorized)
            var tampered = Array(access)
            tampered[tampered.count - 3] = tampered[tampered.count - 3] == "A" ? "B" : "A"
            #expect(try await c.call(.get, "/api/v1/tenants", credential: String(tampered)).status == .unauthorized)
        }
    }

    @Test func anAccessTokenExpiresASuspendedUserIsCutOffAtOnce() async throws {
        let f = try await Fixture()
        try await f.run { c in
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "vera", "roles": ["viewer"], "password": "viewer pass 1234"}"#)
            let (access, _) = try await c.login("vera", "viewer pass 1234")
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access).status == .ok)
            #expect(
                try await c.admin(.patch, "/api/v1/tenants/acme/users/vera", #"{"status": "suspended"}"#).status == .ok)
            let cut = try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access)
            #expect(cut.status == .unauthorized && cut.text.contains("suspended"), "\(cut.text)")
            #expect(
                try await c.admin(.patch, "/api/v1/tenants/acme/users/vera", #"{"status": "active"}"#).status == .ok)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access).status == .ok)
            // 15 minutes later the access token has expired (the clock of the tokens is the service's).
            f.clock.advance(byMillis: 15 * 60 * 1_000 + 1_000)
            let expired = try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access)
            #expect(expired.status == .unauthorized && expired.text.contains("expired"), "\(expired.text)")
        }
    }

    /// Item 8: a change made directly in the store (not through the service, which forgets what it resolved at
    /// once) is seen within a second; a password change signs the user out but keeps their API keys.
    @Test func aChangeInTheStoreIsSeenWithinASecondAndANewPasswordKeepsAPIKeys() async throws {
        let f = try await Fixture()
        try await f.run { c in
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "sam", "roles": ["operator"], "password": "operator pass 123"}"#)
            let (access, refresh) = try await c.login("sam", "operator pass 123")
            let made = try await c.call(
                .post, "/api/v1/auth/api-keys", #"{"name": "cron", "permissions": ["device:read"]}"#, credential: access
            )
            let key = try #require(Self.field("key", in: made.text) as? String, "\(made.text)")
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access).status == .ok)
            var user = try #require(try await f.store.user("sam"))
            user.status = .suspended
            try await f.store.saveUser(user)
            // A call a second after the change is refused, whenever the principal was cached before it.
            try await Task.sleep(for: .milliseconds(1_010))
            let refused = try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access)
            #expect(refused.status == .unauthorized && refused.text.contains("suspended"), "\(refused.text)")
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: key).status == .unauthorized)
            user.status = .active
            try await f.store.saveUser(user)
            f.identity.forgetResolvedCredentials()
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: access).status == .ok)
            // A new password: the refresh token is gone, the API key stays.
            let changed = try await c.call(
                .post, "/api/v1/auth/password",
                #"{"currentPassword": "operator pass 123", "newPassword": "another pass 4567"}"#, credential: access)
            #expect(changed.status == .noContent, "\(changed.text)")
            #expect(
                try await c.call(.post, "/api/v1/auth/refresh", #"{"refreshToken": "\#(refresh)"}"#).status
                    == .unauthorized)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: key).status == .ok)
            #expect(try await f.store.secrets(kind: .apiKey, tenant: "acme").count == 1)
        }
    }

    @Test func failedSignInsLockTheAccountUntilUnlocked() async throws {
        let f = try await Fixture(configuration: .init(maxFailedSignIns: 3))
        try await f.run { c in
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "ivan", "roles": ["viewer"], "password": "right pass 1234"}"#)
            let unknown = try await c.call(.post, "/api/v1/auth/login", #"{"username": "nobody", "password": "x"}"#)
            for _ in 0..<3 {
                let wrong = try await c.call(.post, "/api/v1/auth/login", #"{"username": "ivan", "password": "wrong"}"#)
                #expect(wrong.status == .unauthorized)
                #expect(
                    Self.field("message", in: wrong.text) as? String == Self.field("message", in: unknown.text)
                        as? String,
                    "an unknown user and a wrong password read the same")
            }
            let locked = try await c.call(
                .post, "/api/v1/auth/login", #"{"username": "ivan", "password": "right pass 1234"}"#)
            #expect(locked.status == .tooManyRequests && locked.text.contains("locked"), "\(locked.text)")
            #expect(try await c.admin(.patch, "/api/v1/tenants/acme/users/ivan", #"{"unlock": true}"#).status == .ok)
            _ = try await c.login("ivan", "right pass 1234")
            // The lock also ends by itself.
            for _ in 0..<3 {
                _ = try await c.call(.post, "/api/v1/auth/login", #"{"username": "ivan", "password": "wrong"}"#)
            }
            f.clock.advance(byMillis: 15 * 60 * 1_000 + 1)
            _ = try await c.login("ivan", "right pass 1234")
            let attempts = try await f.audit.events(AuditQuery(actionPrefix: "auth.login"))
            #expect(attempts.count == 10, "every attempt is audited: \(attempts.map(\.status))")
            #expect(attempts.filter { $0.status == 429 }.count == 1)
        }
    }

    @Test func thePasswordPolicyAndPrivilegeEscalationAreRefused() async throws {
        let f = try await Fixture()
        try await f.run { c in
            let short = try await c.admin(
                .post, "/api/v1/tenants/acme/users", #"{"username": "kim", "roles": ["viewer"], "password": "short1"}"#)
            #expect(short.status == .badRequest && short.text.contains("at least 12"), "\(short.text)")
            let name = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "kimberly", "roles": ["viewer"], "password": "kimberly-2024-x"}"#)
            #expect(name.status == .badRequest && name.text.contains("username"), "\(name.text)")
            let platformRole = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "kim", "roles": ["platform-admin"], "password": "a long password 1"}"#)
            #expect(platformRole.status == .badRequest, "\(platformRole.text)")
            // A tenant admin may not hand out what they lack (no role or key beyond their own permissions).
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "tina", "roles": ["tenant-admin"], "password": "tenant admin pass 1"}"#)
            let (tina, _) = try await c.login("tina", "tenant admin pass 1")
            let role = try await c.call(
                .post, "/api/v1/tenants/acme/roles", #"{"id": "super", "permissions": ["tenant:write"]}"#,
                credential: tina)
            #expect(role.status == .badRequest && role.text.contains("tenant:write"), "\(role.text)")
            let key = try await c.call(
                .post, "/api/v1/tenants/acme/api-keys", #"{"name": "x", "permissions": ["tenant:write"]}"#,
                credential: tina)
            #expect(key.status == .forbidden && key.text.contains("tenant:write"), "\(key.text)")
            // A custom role within the tenant admin's own permissions works, and its holder gets just that.
            let shift = try await c.call(
                .post, "/api/v1/tenants/acme/roles", #"{"id": "shift", "permissions": ["alarm:read", "alarm:ack"]}"#,
                credential: tina)
            #expect(shift.status == .created, "\(shift.text)")
            #expect(
                try await c.call(
                    .post, "/api/v1/tenants/acme/users",
                    #"{"username": "sam", "roles": ["shift"], "password": "shift lead pass 1"}"#, credential: tina
                ).status == .created)
            let (sam, _) = try await c.login("sam", "shift lead pass 1")
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: sam).status == .forbidden)
            let held = try await c.call(.delete, "/api/v1/tenants/acme/roles/shift", credential: tina)
            #expect(held.status == .conflict && held.text.contains("sam"), "\(held.text)")
        }
    }

    @Test func activationAndPasswordResetGoThroughTheOutboxAsOneTimeLinks() async throws {
        let f = try await Fixture()
        try await f.run { c in
            let made = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "nina", "roles": ["viewer"], "email": "nina@example.com"}"#)
            #expect(made.status == .created && made.text.contains(#""status":"pending""#), "\(made.text)")
            let pending = try await c.call(
                .post, "/api/v1/auth/login", #"{"username": "nina", "password": "anything at all 1"}"#)
            #expect(pending.status == .unauthorized, "no password yet: \(pending.text)")
            func link(_ marker: String) async throws -> String {
                let messages = try await f.outbox.messages(.tenant("acme"), status: .pending, limit: 100)
                let body = try #require(messages.last { $0.body.contains(marker) }?.body, "\(messages)")
                #expect(messages.last?.recipient == "nina@example.com")
                let start = try #require(body.range(of: marker)).upperBound
                return String(body[start...].prefix { !$0.isWhitespace && $0 != "." })
            }
            let activation = try await link("https://iot.example.com/console/#activate=")
            #expect(
                try await c.call(
                    .post, "/api/v1/auth/activate", #"{"token": "\#(activation)", "password": "my own secret pass 1"}"#
                )
                .status == .noContent)
            _ = try await c.login("nina", "my own secret pass 1")
            #expect(
                try await c.call(
                    .post, "/api/v1/auth/activate", #"{"token": "\#(activation)", "password": "another pass 12"}"#
                )
                .status == .unauthorized, "a link works once")
            // Reset: the answer is the same for an unknown user, and only the real one gets a message.
            #expect(
                try await c.call(.post, "/api/v1/auth/password-reset", #"{"username": "ghost"}"#).status == .accepted)
            #expect(
                try await c.call(.post, "/api/v1/auth/password-reset", #"{"username": "nina"}"#).status == .accepted)
            let reset = try await link("https://iot.example.com/console/#reset=")
            let (_, oldRefresh) = try await c.login("nina", "my own secret pass 1")
            #expect(
                try await c.call(
                    .post, "/api/v1/auth/password-reset/confirm",
                    #"{"token": "\#(reset)", "password": "a brand new pass 2"}"#
                ).status == .noContent)
            _ = try await c.login("nina", "a brand new pass 2")
            #expect(
                try await c.call(.post, "/api/v1/auth/refresh", #"{"refreshToken": "\#(oldRefresh)"}"#).status
                    == .unauthorized, "a reset signs out every earlier session")
            let expired = try await c.call(
                .post, "/api/v1/auth/password-reset/confirm",
                #"{"token": "\#(reset)", "password": "third pass here 3"}"#)
            #expect(expired.status == .unauthorized)
        }
    }

    @Test func apiKeysCarryASubsetExpireAreRevokedAndAreKeptOnlyAsDigests() async throws {
        let f = try await Fixture()
        try await f.run { c in
            let made = try await c.admin(
                .post, "/api/v1/tenants/acme/api-keys",
                #"{"name": "grafana", "permissions": ["data:read", "device:read"], "expiresAt": 1700000600000}"#)
            #expect(made.status == .created, "\(made.text)")
            let key = try #require(Self.field("key", in: made.text) as? String)
            let id = try #require(Self.field("id", in: made.text) as? String)
            #expect(key.hasPrefix("iotk_"))
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: key).status == .ok)
            let write = try await c.call(
                .post, "/api/v1/tenants/acme/devices", #"{"uid": "x", "product": "thermo"}"#, credential: key)
            #expect(write.status == .forbidden && write.text.contains("device:write"), "\(write.text)")
            #expect(try await c.call(.get, "/api/v1/tenants/globex/devices", credential: key).status == .forbidden)
            // Listed without the key; kept only as a digest.
            let listed = try await c.admin(.get, "/api/v1/tenants/acme/api-keys")
            #expect(listed.text.contains(id) && !listed.text.contains(key), "\(listed.text)")
            let stored = try await f.store.secrets(kind: .apiKey, tenant: "acme")
            #expect(stored.count == 1 && stored[0].digest.count == 32)
            #expect(!String(decoding: stored[0].digest, as: UTF8.self).contains(key))
            // Expiry.
            f.clock.advance(byMillis: 600_000)
            let expired = try await c.call(.get, "/api/v1/tenants/acme/devices", credential: key)
            #expect(expired.status == .unauthorized && expired.text.contains("expired"), "\(expired.text)")
            // Revocation of another key.
            let other = try await c.admin(
                .post, "/api/v1/tenants/acme/api-keys", #"{"name": "ci", "permissions": ["device:read"]}"#)
            let otherKey = try #require(Self.field("key", in: other.text) as? String)
            let otherID = try #require(Self.field("id", in: other.text) as? String)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: otherKey).status == .ok)
            #expect(try await c.admin(.delete, "/api/v1/tenants/acme/api-keys/\(otherID)").status == .noContent)
            #expect(
                try await c.call(.get, "/api/v1/tenants/acme/devices", credential: otherKey).status == .unauthorized)
            // A user's own key never does more than the user may do now.
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "omar", "roles": ["operator"], "password": "operator pass 12"}"#)
            let (omar, _) = try await c.login("omar", "operator pass 12")
            let own = try await c.call(
                .post, "/api/v1/auth/api-keys", #"{"name": "script", "permissions": ["device:write"]}"#,
                credential: omar)
            let ownKey = try #require(Self.field("key", in: own.text) as? String, "\(own.text)")
            #expect(
                try await c.call(
                    .post, "/api/v1/tenants/acme/devices", #"{"uid": "k-1", "product": "thermo"}"#, credential: ownKey
                )
                .status == .created)
            _ = try await c.admin(.patch, "/api/v1/tenants/acme/users/omar", #"{"roles": ["viewer"]}"#)
            #expect(
                try await c.call(
                    .post, "/api/v1/tenants/acme/devices", #"{"uid": "k-2", "product": "thermo"}"#, credential: ownKey
                )
                .status == .forbidden, "the owner lost device:write, so did the key")
        }
    }

    @Test func everyChangeAndSignInIsAuditedQueryableAndExportableAsCSV() async throws {
        let f = try await Fixture()
        try await f.run { c in
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "ada", "roles": ["tenant-admin"], "password": "tenant admin pass 1"}"#)
            let (ada, _) = try await c.login("ada", "tenant admin pass 1")
            _ = try await c.call(
                .post, "/api/v1/tenants/acme/devices", #"{"uid": "a-1", "product": "thermo"}"#, credential: ada)
            _ = try await c.call(
                .post, "/api/v1/tenants/globex/devices", #"{"uid": "a-2", "product": "thermo"}"#, credential: ada)
            _ = try await c.call(.get, "/api/v1/tenants/acme/devices", credential: ada)
            let all = try await f.audit.events(AuditQuery())
            #expect(all.map(\.action).contains("POST /api/v1/tenants/{tenant}/devices"), "\(all.map(\.action))")
            #expect(!all.contains { $0.action.hasPrefix("GET") }, "reads are not audited")
            let created = try #require(all.first { $0.actor == "ada" && $0.target == "/api/v1/tenants/acme/devices" })
            #expect(created.status == 201 && created.tenant == "acme")
            let refused = try #require(all.first { $0.target == "/api/v1/tenants/globex/devices" })
            #expect(refused.status == 403 && refused.actor == "ada", "a refused change is audited too")
            #expect(
                try await f.audit.events(AuditQuery(tenant: "globex")).isEmpty, "globex's log has nothing of acme's")
            #expect(all.contains { $0.action == "auth.login" && $0.actor == "ada" && $0.status == 200 })
            // Ada reads her tenant's log only.
            let mine = try await c.call(.get, "/api/v1/audit?actor=ada", credential: ada)
            #expect(mine.status == .ok && mine.text.contains("/api/v1/tenants/acme/devices"), "\(mine.text)")
            #expect(refused.tenant == "acme", "logged in the caller's tenant, not in the one refused to them")
            #expect(try await c.call(.get, "/api/v1/audit?tenant=globex", credential: ada).status == .forbidden)
            let failures = try await c.admin(.get, "/api/v1/audit?result=failure")
            #expect(failures.text.contains("globex") && !failures.text.contains(#""status":201"#), "\(failures.text)")
            let csv = try await c.admin(.get, "/api/v1/tenants/acme/audit?format=csv")
            #expect(csv.status == .ok)
            let lines = csv.text.split(separator: "\r\n")
            #expect(lines.first == "id,time,actor,tenant,action,target,status,client")
            #expect(lines.contains { $0.contains(",ada,acme,POST /api/v1/tenants/{tenant}/devices,") }, "\(csv.text)")
            #expect(try await c.admin(.get, "/api/v1/audit?limit=0").status == .badRequest)
            // The retention: entries older than auditRetention (here 90 days) go, newer ones stay.
            let before = try await f.audit.events(AuditQuery()).count
            f.clock.advance(byMillis: 89 * 86_400_000)
            _ = try await c.call(.post, "/api/v1/auth/login", #"{"username": "ada", "password": "wrong"}"#)
            #expect(await f.identity.pruneAuditLog() == 0)
            f.clock.advance(byMillis: 2 * 86_400_000)
            #expect(await f.identity.pruneAuditLog() == before, "the entries past 90 days are pruned")
            #expect(try await f.audit.events(AuditQuery()).count == 1, "the newer one stays")
        }
    }

    @Test func aUserSeesTheDevicesOfTheirDepartmentsSubtreeAndTheirGrantsOnly() async throws {
        let f = try await Fixture()
        for (uid, department) in [("n-1", "north-1"), ("n-0", "north"), ("s-1", "south"), ("g-1", nil)] {
            try await f.registry.saveDevice(
                .tenant("acme"), Device(uid: uid, product: "thermo", department: department))
        }
        try await f.registry.saveProduct(.tenant("acme"), Product(id: "meter"))
        try await f.registry.saveDevice(.tenant("acme"), Device(uid: "m-1", product: "meter", department: "south"))
        try await f.run { c in
            for body in [#"{"id": "north"}"#, #"{"id": "north-1", "parent": "north"}"#, #"{"id": "south"}"#] {
                #expect(try await c.admin(.post, "/api/v1/tenants/acme/departments", body).status == .created)
            }
            let cycle = try await c.admin(
                .post, "/api/v1/tenants/acme/departments", #"{"id": "north", "parent": "north-1"}"#)
            #expect(cycle.status == .badRequest && cycle.text.contains("cycles"), "\(cycle.text)")
            let unknown = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "xavier", "roles": ["viewer"], "department": "west", "password": "some long pass 1"}"#)
            #expect(unknown.status == .badRequest && unknown.text.contains("west"), "\(unknown.text)")
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "nora", "roles": ["operator"], "department": "north", "grants": {"devices": ["g-1"], "products": ["meter"]}, "password": "north lead pass 1"}"#
            )
            let (nora, _) = try await c.login("nora", "north lead pass 1")
            let listed = try await c.call(.get, "/api/v1/tenants/acme/devices", credential: nora)
            let uids = ((try? JSONSerialization.jsonObject(with: Data(listed.text.utf8))) as? [[String: Any]] ?? [])
                .compactMap { $0["uid"] as? String }.sorted()
            #expect(
                uids == ["g-1", "m-1", "n-0", "n-1"], "north's subtree, the granted device and product: \(listed.text)")
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices/s-1", credential: nora).status == .notFound)
            #expect(
                try await c.call(.get, "/api/v1/tenants/acme/devices/s-1/latest", credential: nora).status == .notFound)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices/n-1/latest", credential: nora).status == .ok)
            #expect(
                try await c.call(.delete, "/api/v1/tenants/acme/devices/s-1", credential: nora).status != .noContent)
            #expect(
                try await f.registry.device(.tenant("acme"), uid: "s-1") != nil, "nothing outside the scope changes")
            // Her API key carries her scope; the admin key sees everything.
            let key = try await c.call(
                .post, "/api/v1/auth/api-keys", #"{"name": "k", "permissions": ["device:read"]}"#, credential: nora)
            let apiKey = try #require(Self.field("key", in: key.text) as? String)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices/s-1", credential: apiKey).status == .notFound)
            #expect(try await c.admin(.get, "/api/v1/tenants/acme/devices/s-1").status == .ok)
            // A department with users is kept.
            let busy = try await c.admin(.delete, "/api/v1/tenants/acme/departments/north")
            #expect(busy.status == .conflict && busy.text.contains("nora"), "\(busy.text)")
        }
    }

    /// Issue 19, item 10: a department made from its name gets its id; sign-in may name the tenant, and a user of
    /// another tenant is refused as a wrong password is; a deleted user's token stops working at once.
    @Test func theInterfaceOfDepartmentsAndSignIn() async throws {
        let f = try await Fixture()
        try await f.run { c in
            let north = try await c.admin(.post, "/api/v1/tenants/acme/departments", #"{"name": "North Hall"}"#)
            #expect(
                north.status == .created && Self.field("id", in: north.text) as? String == "north-hall", "\(north.text)"
            )
            let again = try await c.admin(
                .post, "/api/v1/tenants/acme/departments", #"{"name": "North Hall!", "parent": "north-hall"}"#)
            #expect(Self.field("id", in: again.text) as? String == "north-hall-2", "\(again.text)")
            #expect(try await c.admin(.post, "/api/v1/tenants/acme/departments", "{}").status == .badRequest)
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "olga", "password": "operator pass 123", "roles": ["operator"], "department": "north-hall"}"#
            )
            let ok = try await c.call(
                .post, "/api/v1/auth/login", #"{"tenant": "acme", "username": "olga", "password": "operator pass 123"}"#
            )
            #expect(ok.status == .ok && ok.text.contains("accessToken") && ok.text.contains("expiresIn"))
            let other = try await c.call(
                .post, "/api/v1/auth/login",
                #"{"tenant": "globex", "username": "olga", "password": "operator pass 123"}"#)
            #expect(other.status == .unauthorized, "\(other.text)")
            let token = try #require(Self.field("accessToken", in: ok.text) as? String)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: token).status == .ok)
            #expect(try await c.admin(.delete, "/api/v1/tenants/acme/users/olga").status == .noContent)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: token).status == .unauthorized)
        }
    }

    /// Issue 19, item 7: a policy's recipients may be users, roles and departments; each user's own contact on
    /// the channel is used (their email on an email channel, their phone on SMS, a contact by channel name).
    @Test func recipientsComeFromTheDirectory() async throws {
        let store = InMemoryIdentityStore()
        for d in [Department(id: "north"), Department(id: "north-1", parent: "north"), Department(id: "south")] {
            try await store.saveDepartment(d, tenant: "acme")
        }
        func user(_ name: String, _ roles: [String], _ department: String?, status: UserAccount.Status = .active)
            -> UserAccount
        {
            var u = UserAccount(
                username: name, tenant: "acme", email: "\(name)@example.com", roles: roles, department: department,
                status: status, createdAt: 0)
            u.phone = "+100\(name.count)"
            u.contacts = ["ops-dingtalk": "ding-\(name)"]
            return u
        }
        try await store.saveUser(user("ann", ["operator"], "north-1"))
        try await store.saveUser(user("bob", ["viewer"], "south"))
        try await store.saveUser(user("cid", ["operator"], "south", status: .suspended))
        var other = user("dan", ["operator"], nil)
        other.tenant = "globex"
        try await store.saveUser(other)
        let resolver = DirectoryRecipientResolver(
            store: store, emailChannels: ["ops-mail"], phoneChannels: ["sms"],
            fallback: StaticRecipientResolver(groups: ["night": [.init(name: "eve", addresses: ["ops-mail": "eve@x"])]])
        )
        #expect(await resolver.resolve("role:operator", channel: "ops-mail", tenant: "acme") == ["ann@example.com"])
        #expect(await resolver.resolve("department:north", channel: "sms", tenant: "acme") == ["+1003"])
        #expect(await resolver.resolve("user:bob", channel: "ops-dingtalk", tenant: "acme") == ["ding-bob"])
        #expect(await resolver.resolve("user:dan", channel: "ops-mail", tenant: "acme").isEmpty, "another tenant's")
        #expect(await resolver.resolve("user:bob", channel: "webhook", tenant: "acme").isEmpty, "no contact there")
        #expect(await resolver.resolve("group:night", channel: "ops-mail", tenant: "acme") == ["eve@x"])
        #expect(
            await resolver.resolve("plain@example.com", channel: "ops-mail", tenant: "acme") == ["plain@example.com"])
        // Through the router into the outbox.
        let outbox = InMemoryOutbox()
        let router = NotificationRouter(
            outbox: outbox, registry: nil, resolver: resolver, clock: ManualClock(), logger: Logger(label: "t"))
        try await router.notify(
            templateID: "maintenance_notice",
            values: ["title": "t", "message": "m", "start_time": "s", "end_time": "e"],
            targets: [RoutingTarget(channel: "ops-mail", recipients: ["department:north", "role:viewer"])],
            tenant: "acme")
        let sent = try await outbox.messages(.tenant("acme"), status: .pending, limit: 10).map(\.recipient).sorted()
        #expect(sent == ["ann@example.com", "bob@example.com"])
    }

    @Test func rotatedSigningKeysKeepEarlierTokensValidUntilTheirKeyIsDropped() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iot-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("keys.json").path
        let f = try await Fixture(keys: try SigningKeys(file: file))
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o600, "the key file is private")
        try await f.run { c in
            _ = try await c.admin(
                .post, "/api/v1/tenants/acme/users",
                #"{"username": "rita", "roles": ["viewer"], "password": "rotation pass 1"}"#)
            let (before, _) = try await c.login("rita", "rotation pass 1")
            // A new key first; the server notices the changed file within a second.
            try await Task.sleep(for: .milliseconds(1_100))
            let kid = try SigningKeys.rotate(file: file, now: Date().addingTimeInterval(5))
            try await Task.sleep(for: .milliseconds(1_100))
            let (after, _) = try await c.login("rita", "rotation pass 1")
            let header = try #require(Data(base64URL: String(after.split(separator: ".")[0])))
            #expect(String(decoding: header, as: UTF8.self).contains(kid), "new tokens are signed with the new key")
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: before).status == .ok)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: after).status == .ok)
            // Dropping the old key ends the tokens it signed.
            let text = try String(contentsOfFile: file, encoding: .utf8)
            var object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            object["keys"] = [(object["keys"] as? [Any])?.first].compactMap { $0 }
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: file))
            try await Task.sleep(for: .milliseconds(1_100))
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: before).status == .unauthorized)
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: after).status == .ok)
            // A file broken by hand keeps the keys in force.
            try Data("{ not json".utf8).write(to: URL(fileURLWithPath: file))
            try await Task.sleep(for: .milliseconds(1_100))
            #expect(try await c.call(.get, "/api/v1/tenants/acme/devices", credential: after).status == .ok)
            _ = try await c.login("rita", "rotation pass 1")
        }
    }
}

extension Data {
    fileprivate init?(base64URL text: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        self.init(base64Encoded: base64)
    }
}
