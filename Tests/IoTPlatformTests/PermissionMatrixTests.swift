import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IoTCore
import IoTPlatform
import IoTServer
import NIOCore
import Testing
import Yams

/// Issue 19, item 2: every operation `openapi.yaml` documents under `/api` names its permission
/// (`x-permission`), and the platform's router checks exactly that one: an API key holding every other
/// permission gets 403 naming it; a key holding only it gets past the check.
@Suite struct PermissionMatrixTests {
    struct Operation {
        var method: HTTPRequest.Method
        var path: String
        var permission: String
    }

    /// The documented management operations with their `x-permission`.
    static func operations() throws -> [Operation] {
        let spec = try #require(try Yams.load(yaml: try OpenAPIDocument.yaml()) as? [String: Any])
        let paths = try #require(spec["paths"] as? [String: Any])
        var out: [Operation] = []
        for (path, item) in paths where path.hasPrefix("/api/v1/") {
            guard let item = item as? [String: Any] else { continue }
            for (method, operation) in item {
                guard let m = HTTPRequest.Method(method.uppercased()), let operation = operation as? [String: Any]
                else { continue }
                // The device listener's operations have no permission: devices present their own credentials.
                if path.hasPrefix("/api/v1/devices") || path.hasPrefix("/api/v1/{token}") { continue }
                let permission = try #require(
                    operation["x-permission"] as? String, "\(method.uppercased()) \(path) names no x-permission")
                out.append(Operation(method: m, path: path, permission: permission))
            }
        }
        return out.sorted { ($0.path, $0.method.rawValue) < ($1.path, $1.method.rawValue) }
    }

    /// A prepared platform on a folder of its own (removed by `body`'s end) with identity and tenants `acme` and
    /// `globex`, each with device `t-1`.
    static func withPlatform(_ body: (IoTPlatform) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iot-perm-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = try PlatformConfiguration(
            yaml: """
                dataDirectory: \(directory.path)
                http: { port: 0 }
                management: { port: 0, adminAPIKey: permission-matrix-admin-key-0123456789 }
                identity: { bcryptCost: 4 }
                tenants:
                  - id: acme
                    products: [{ id: thermo, signals: [{ name: temp }] }]
                    devices: [{ uid: t-1, product: thermo }]
                  - id: globex
                    products: [{ id: thermo, signals: [{ name: temp }] }]
                    devices: [{ uid: t-1, product: thermo }]
                """, environment: [:])
        let platform = try IoTPlatform(configuration: configuration)
        try await platform.prepare()
        try await body(platform)
    }

    @Test func everyDocumentedOperationChecksThePermissionItsSpecNames() async throws {
        try await Self.withPlatform { platform in try await checkEveryOperationsPermission(platform) }
    }

    func checkEveryOperationsPermission(_ platform: IoTPlatform) async throws {
        let operations = try Self.operations()
        #expect(operations.count >= 100, "openapi.yaml documents \(operations.count) management operations")
        let known = Set(Permission.all.map(\.rawValue)).union(["none", "authenticated"])
        for op in operations {
            #expect(known.contains(op.permission), "\(op.method) \(op.path): unknown permission \(op.permission)")
        }
        let values = [
            "{tenant}": "acme", "{uid}": "t-1", "{id}": "x", "{signal}": "temp", "{name}": "p", "{label}": "l",
            "{recipient}": "r", "{username}": "u", "{to}": "1", "{file}": "summary.csv",
        ]
        let app = Application(router: platform.management.makeRouter())
        try await app.test(.router) { client in
            var checked = 0
            for op in operations {
                guard let permission = Permission.all.first(where: { $0.rawValue == op.permission }) else { continue }
                var path = op.path
                for (k, v) in values { path = path.replacingOccurrences(of: k, with: v) }
                let body = op.method == .get || op.method == .delete ? nil : ByteBuffer(string: "{}")
                let lacking = try await platform.identity.createAPIKey(
                    name: "lacking", permissions: Permission.all.subtracting([permission]), expiresAt: nil,
                    tenant: nil, owner: nil, by: .adminKey
                ).key
                let only = try await platform.identity.createAPIKey(
                    name: "only", permissions: [permission], expiresAt: nil, tenant: nil, owner: nil, by: .adminKey
                ).key
                try await client.execute(
                    uri: path, method: op.method, headers: [.authorization: "Bearer \(lacking)"], body: body
                ) { response in
                    let text = String(buffer: response.body)
                    let message =
                        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["message"]
                        as? String ?? ""
                    #expect(
                        response.status == .forbidden && message.contains("\"\(permission)\""),
                        "\(op.method) \(op.path) without \(permission): \(response.status) \(text)")
                }
                try await client.execute(
                    uri: path, method: op.method, headers: [.authorization: "Bearer \(only)"], body: body
                ) { response in
                    let text = String(buffer: response.body)
                    #expect(
                        !text.contains("needs the permission"),
                        "\(op.method) \(op.path) with only \(permission): \(response.status) \(text)")
                }
                checked += 1
            }
            #expect(checked >= 90, "\(checked) operations checked")
        }
    }

    /// Issue 19, item 8: every documented operation × every built-in role, in and out of the user's tenant. A
    /// user holding the operation's permission gets past the check on their own tenant; one without it gets 403
    /// naming it; on another tenant every one of them gets 403.
    @Test func everyOperationTimesEveryBuiltInRoleInAndOutOfScope() async throws {
        try await Self.withPlatform { platform in try await checkEveryRole(platform) }
    }

    func checkEveryRole(_ platform: IoTPlatform) async throws {
        let operations = try Self.operations()
        var users: [(role: Role, tenant: TenantID?, token: String)] = []
        for role in [Role.platformAdmin, .tenantAdmin, .operator, .viewer] {
            let tenant: TenantID? = role.id == Role.platformAdmin.id ? nil : "acme"
            let name = "user-\(role.id)"
            _ = try await platform.identity.createUser(
                NewUser(username: name, roles: [role.id], password: "a long pass for \(role.id) 1"), tenant: tenant,
                by: .adminKey)
            let tokens = try await platform.identity.login(
                username: name, password: "a long pass for \(role.id) 1", client: "test")
            users.append((role, tenant, tokens.accessToken))
        }
        let values = [
            "{uid}": "t-1", "{id}": "x", "{signal}": "temp", "{name}": "p", "{label}": "l", "{recipient}": "r",
            "{username}": "u", "{to}": "1", "{file}": "summary.csv",
        ]
        let app = Application(router: platform.management.makeRouter())
        try await app.test(.router) { [users] client in
            var checked = 0
            for (role, tenant, token) in users {
                let held = tenant == nil ? role.permissions : role.permissions.subtracting(Permission.platformOnly)
                for op in operations {
                    guard let permission = Permission.all.first(where: { $0.rawValue == op.permission }) else {
                        continue
                    }
                    // Deleting the tenant under test would end the run; the permission matrix covers that operation.
                    if op.method == .delete && op.path == "/api/v1/tenants/{tenant}" && held.contains(permission) {
                        continue
                    }
                    var path = op.path
                    for (k, v) in values { path = path.replacingOccurrences(of: k, with: v) }
                    let body = op.method == .get || op.method == .delete ? nil : ByteBuffer(string: "{}")
                    for (scopeTenant, inScope) in [("acme", true), ("globex", false)] {
                        guard inScope || (op.path.contains("{tenant}") && tenant != nil) else { continue }
                        let uri = path.replacingOccurrences(of: "{tenant}", with: scopeTenant)
                        try await client.execute(
                            uri: uri, method: op.method, headers: [.authorization: "Bearer \(token)"], body: body
                        ) { response in
                            let text = String(buffer: response.body)
                            let what = "\(role.id) \(op.method) \(uri): \(response.status) \(text)"
                            if !inScope {
                                #expect(response.status == .forbidden, "out of scope: \(what)")
                            } else if held.contains(permission) {
                                #expect(!text.contains("needs the permission"), "holds \(permission): \(what)")
                            } else {
                                #expect(
                                    response.status == .forbidden && text.contains(permission.rawValue),
                                    "lacks \(permission): \(what)")
                            }
                        }
                        checked += 1
                    }
                }
            }
            #expect(checked >= 400, "\(checked) role × operation × scope cases")
        }
    }
}
