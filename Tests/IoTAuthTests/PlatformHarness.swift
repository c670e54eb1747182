import Foundation
import IoTCore
import IoTServer
import IoTStorage
import IoTTestSupport
import IoTTesting
import Logging
import ServiceLifecycle

/// A management listener over in-memory stores with the EMQX endpoints and, optionally, brokers that
/// the token issuer provisions; HTTP clients run on their own threads, off the cooperative pool.
final class PlatformHarness: Sendable {
    static let adminKey = "admin-key"
    static let brokerKey = "broker-key"
    let registry = InMemoryRegistryStore()
    let tokens = TokenAuthenticator(credentials: InMemoryCredentialStore())
    let issuer: ProvisioningTokenIssuer
    let access: BrokerAccessControl
    let server: ManagementServer
    let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(
        policy: BrokerAccountPolicy = .init(), provisioners: [any BrokerProvisioner] = [],
        ignoredUsernames: Set<String> = [], tenants: [TenantID] = ["acme"]
    ) async throws {
        issuer = ProvisioningTokenIssuer(tokens, provisioners: provisioners)
        access = BrokerAccessControl(
            policy: policy, configuration: .init(ignoredUsernames: ignoredUsernames), authenticator: tokens,
            registry: registry, tokens: tokens, logger: Logger(label: "test"))
        server = ManagementServer(
            configuration: .init(port: 0, adminAPIKey: Self.adminKey, brokerAuthKey: Self.brokerKey),
            registry: registry, points: InMemoryPointStore(), tokens: issuer, ingestor: nil, prometheus: nil,
            brokerAccess: access, logger: Logger(label: "test"))
        let group = ServiceGroup(configuration: .init(services: [server], logger: Logger(label: "test")))
        self.group = group
        task = Task { try await group.run() }
        port = try await server.listeningPort()
        for tenant in tenants {
            try await registry.saveTenant(Tenant(id: tenant))
            try await registry.saveProduct(.tenant(tenant), Product(id: "meter"))
        }
    }

    func addDevice(_ uid: String, tenant: TenantID = "acme") async throws {
        try await registry.saveDevice(.tenant(tenant), Device(uid: uid, product: "meter"))
    }

    /// One HTTP request on a fresh connection, made on a separate thread.
    func request(
        _ method: String, _ path: String, headers: [String: String] = [:], body: String = ""
    ) async throws -> LoopbackHTTPClient.Response {
        let port = self.port
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let client = try LoopbackHTTPClient(port: port)
                    continuation.resume(
                        returning: try client.request(method, path, headers: headers, body: Array(body.utf8)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// A management API call with the admin key.
    func api(_ method: String, _ path: String, body: String = "") async throws -> LoopbackHTTPClient.Response {
        try await request(
            method, path, headers: ["X-API-Key": Self.adminKey, "Content-Type": "application/json"], body: body)
    }

    /// Issues a token through the management API.
    func issueToken(_ uid: String, tenant: TenantID = "acme") async throws -> (status: Int, token: String?) {
        let r = try await api("POST", "/api/v1/tenants/\(tenant)/devices/\(uid)/tokens", body: #"{"label":"mqtt"}"#)
        let json = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        return (r.status, json?["token"] as? String)
    }

    /// Asks an EMQX endpoint (`auth` or `acl`) with a JSON body; returns the status and the decoded answer.
    func emqx(_ endpoint: String, _ fields: [String: Any], key: String? = PlatformHarness.brokerKey) async throws -> (
        status: Int, result: String?, json: [String: Any]
    ) {
        var headers = ["Content-Type": "application/json"]
        if let key { headers["Authorization"] = "Bearer \(key)" }
        let body = String(decoding: try JSONSerialization.data(withJSONObject: fields), as: UTF8.self)
        let r = try await request("POST", "/broker/v1/emqx/\(endpoint)", headers: headers, body: body)
        let json = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
        return (r.status, json["result"] as? String, json)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

extension PlatformHarness {
    /// Runs `body` with a started harness and stops it afterwards, also when `body` throws.
    static func with(
        policy: BrokerAccountPolicy = .init(), provisioners: [any BrokerProvisioner] = [],
        ignoredUsernames: Set<String> = [], tenants: [TenantID] = ["acme"],
        _ body: (PlatformHarness) async throws -> Void
    ) async throws {
        let platform = try await PlatformHarness(
            policy: policy, provisioners: provisioners, ignoredUsernames: ignoredUsernames, tenants: tenants)
        do {
            try await body(platform)
        } catch {
            await platform.stop()
            throw error
        }
        await platform.stop()
    }
}
