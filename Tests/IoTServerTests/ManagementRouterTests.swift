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

/// The management API driven through its router, with no socket (HummingbirdTesting's `.router` mode): the
/// route collections, the admin-key group middleware, 404 for an absent component and 405 with `Allow`.
/// The socket tests of the listener are in `ManagementAPITests` and the others of this target.
@Suite struct ManagementRouterTests {
    static let key = "router-test-key"

    func makeServer() -> (ManagementServer, InMemoryRegistryStore) {
        let registry = InMemoryRegistryStore()
        let server = ManagementServer(
            configuration: .init(port: 0, adminAPIKey: Self.key), registry: registry, points: InMemoryPointStore(),
            tokens: TokenAuthenticator(credentials: InMemoryCredentialStore()), ingestor: nil, prometheus: nil)
        return (server, registry)
    }

    var admin: HTTPFields { [HTTPField.Name("X-API-Key")!: Self.key] }

    @Test func tenantsProductsAndDevicesThroughTheRouter() async throws {
        let (server, registry) = makeServer()
        let app = Application(router: server.makeRouter())
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/tenants", method: .get) { response in
                #expect(response.status == .unauthorized, "the admin key is checked by the group's middleware")
            }
            try await client.execute(
                uri: "/api/v1/tenants", method: .post, headers: admin, body: ByteBuffer(string: #"{"id": "acme"}"#)
            ) { response in
                #expect(response.status == .created)
            }
            try await client.execute(
                uri: "/api/v1/tenants/acme/products", method: .post, headers: admin,
                body: ByteBuffer(string: #"{"id": "thermo", "signals": [{"name": "temp"}]}"#)
            ) { response in
                #expect(response.status == .created, "\(String(buffer: response.body))")
            }
            try await client.execute(
                uri: "/api/v1/tenants/acme/devices", method: .post, headers: admin,
                body: ByteBuffer(string: #"{"uid": "t-1", "product": "thermo"}"#)
            ) { response in
                #expect(response.status == .created, "\(String(buffer: response.body))")
            }
            try await client.execute(uri: "/api/v1/tenants/acme/devices/t-1", method: .get, headers: admin) {
                response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains(#""uid":"t-1""#), "\(String(buffer: response.body))")
            }
            // The same route reached through a doubled slash is still behind the key.
            try await client.execute(uri: "//api/v1/tenants/acme/devices", method: .get) { response in
                #expect(response.status == .unauthorized)
            }
        }
        #expect(try await registry.device(.tenant("acme"), uid: "t-1")?.product == "thermo")
    }

    @Test func anAbsentComponentIs404AndAWrongMethod405WithAllow() async throws {
        let (server, _) = makeServer()
        let app = Application(router: server.makeRouter())
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/api/v1/tenants", method: .post, headers: admin, body: ByteBuffer(string: #"{"id": "acme"}"#)
            ) { _ in }
            try await client.execute(uri: "/api/v1/tenants/acme/modbus/devices", method: .get, headers: admin) {
                response in
                #expect(response.status == .notFound, "no Modbus administration was given to this server")
            }
            try await client.execute(uri: "/api/v1/tenants", method: .delete, headers: admin) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, POST")
            }
            try await client.execute(uri: "/api/v1/no/such/route", method: .get) { response in
                #expect(response.status == .unauthorized, "without the key nothing tells which routes exist")
            }
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok, "the operational routes need no key")
            }
        }
    }

    /// A resource of an integrator's own, served like the built-in ones: behind the admin key, its tenant
    /// resolved by ``ManagementAPI/tenantScope(_:)``, its errors in the API's shape.
    struct FirmwareRoutes: ManagementRoutes {
        let versions: [String: String]

        func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
            let routes = RouteCollection(context: ManagementContext.self)
            routes.get("/api/v1/tenants/:tenant/firmware") { _, context in
                try await api.handle {
                    let scope = try await api.tenantScope(context)
                    guard let version = versions[scope.tenant.rawValue] else {
                        throw IoTError(.notFound, "no firmware for tenant \(scope.tenant)")
                    }
                    return Response(
                        status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(string: #"{"version":"\#(version)"}"#)))
                }
            }
            return routes
        }
    }

    @Test func aResourceOfOneOwnIsServedBehindTheKeyBesideTheBuiltInOnes() async throws {
        let registry = InMemoryRegistryStore()
        let points = InMemoryPointStore()
        let ruleState = InMemoryRuleStateStore()
        let engine = RuleEngine(
            clock: ManualClock(), stateStore: ruleState, pointStore: points, registry: registry,
            logger: Logger(label: "test"))
        let server = ManagementServer(
            configuration: .init(port: 0, adminAPIKey: Self.key), registry: registry, points: points,
            tokens: TokenAuthenticator(credentials: InMemoryCredentialStore()), ingestor: nil, prometheus: nil,
            resources: [
                FirmwareRoutes(versions: ["acme": "2.1.0"]), RuleRoutes(engine: engine),
                AlarmRoutes(engine: engine, state: ruleState),
            ])
        let app = Application(router: server.makeRouter())
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/api/v1/tenants", method: .post, headers: admin, body: ByteBuffer(string: #"{"id": "acme"}"#)
            ) { _ in }
            try await client.execute(uri: "/api/v1/tenants/acme/firmware", method: .get) { response in
                #expect(response.status == .unauthorized, "an added resource is behind the same middleware")
            }
            try await client.execute(uri: "/api/v1/tenants/acme/firmware", method: .get, headers: admin) {
                response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"version":"2.1.0"}"#)
            }
            try await client.execute(uri: "/api/v1/tenants/nobody/firmware", method: .get, headers: admin) {
                response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains(#"tenant \"nobody\" does not exist"#))
            }
            try await client.execute(uri: "/api/v1/tenants/acme/firmware", method: .delete, headers: admin) {
                response in
                #expect(response.status == .methodNotAllowed, "405 with Allow covers added resources too")
                #expect(response.headers[.allow] == "GET")
            }
            try await client.execute(uri: "/api/v1/tenants/acme/rules", method: .get, headers: admin) { response in
                #expect(response.status == .ok, "the rules resource was given")
                #expect(String(buffer: response.body) == "[]")
            }
            try await client.execute(uri: "/api/v1/tenants/acme/alarms?open=true", method: .get, headers: admin) {
                response in
                #expect(response.status == .ok, "the alarms resource was given")
            }
            try await client.execute(uri: "/api/v1/tenants/acme/statistics/jobs", method: .get, headers: admin) {
                response in
                #expect(response.status == .notFound, "the statistics resource was not given")
                #expect(String(buffer: response.body).contains("add StatisticsRoutes"))
            }
        }
    }
}
