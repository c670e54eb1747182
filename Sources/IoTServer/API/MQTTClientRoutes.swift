import Foundation
import HTTPTypes
public import Hummingbird
public import IoTCore
import NIOCore

/// `/api/v1/mqtt/clients`: MQTT ingest clients managed at run time through an
/// ``IoTCore/MQTTClientAdministration`` (IoTMQTT's `MQTTClientManager`). A client spec in, a report out (see
/// `openapi.yaml`); errors are ``IoTCore/IoTError``s: `invalidArgument` answers 400, `notFound` 404,
/// `conflict` 409 (an existing id, or a limit of the instance, with the reason). The spec's tenant must exist.
///
/// A client created or changed here is kept in the definition store of its tenant (kind `mqtt-client`, the
/// spec as it was sent) and comes back with ``ManagementServer/restoreDefinitions(of:)``, as Modbus devices and
/// CoAP observations do; a removed one is forgotten.
public struct MQTTClientRoutes: ManagementRoutes {
    let clients: any MQTTClientAdministration
    let definitions: (any DefinitionStore)?
    let gauges = SampledGauges()

    /// Serves the clients of `clients`.
    ///
    /// - Parameters:
    ///   - clients: the client manager.
    ///   - definitions: keeps the clients created through the API, so that they connect again after a restart;
    ///     `nil` keeps them in memory only.
    public init(clients: any MQTTClientAdministration, definitions: (any DefinitionStore)? = nil) {
        self.clients = clients
        self.definitions = definitions
    }

    /// Creates again the clients earlier runs created or changed through the API.
    public func restoreDefinitions(
        of tenant: TenantID, _ api: ManagementAPI
    ) async throws -> [ManagementServer.RestoreFailure] {
        try await api.restore(
            DefinitionKind.mqttClient, of: tenant, from: definitions,
            advice: "replace it with PUT /api/v1/mqtt/clients/{id}, or remove it"
        ) { _ = try await clients.restoreClient(try Self.mqttClientSpec($0)) }
    }

    /// Removes the tenant's clients (each ends its broker session) before the tenant is deleted.
    public func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws {
        for report in try await clients.clients() where report.spec.tenant == tenant.rawValue {
            try await clients.removeClient(id: report.spec.id)
        }
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        router.get("/api/v1/mqtt/clients", needs: .transportRead) { _, context in
            try await api.handle {
                // A tenant's principal sees its own tenant's clients only.
                let principal = try context.principal()
                return try Self.mqttClientResponse(
                    try await clients.clients().filter { principal.mayAccess(TenantID($0.spec.tenant)) })
            }
        }
        router.post("/api/v1/mqtt/clients", needs: .transportAdmin) { request, context in
            try await api.handle {
                let body = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let spec = try Self.mqttClientSpec(body)
                try await Self.checkTenant(spec, api)
                try api.checkAccess(TenantID(spec.tenant), try context.principal())
                if let limit = try await api.quotas(.tenant(TenantID(spec.tenant))).mqttClients,
                    try await clients.clients().count(where: { $0.spec.tenant == spec.tenant }) >= limit
                {
                    throw TenantQuotas.exceeded("mqttClients", limit: limit, tenant: TenantID(spec.tenant))
                }
                let report = try await clients.createClient(spec)
                do {
                    try await save(spec, body)
                } catch {
                    // Never keep a client that would not come back after a restart.
                    try? await clients.removeClient(id: spec.id)
                    throw error
                }
                return try Self.mqttClientResponse(report, .created)
            }
        }
        router.get("/api/v1/mqtt/clients/:id", needs: .transportRead) { _, context in
            try await api.handle {
                let report = try await clients.client(id: try context.parameters.require("id"))
                try api.checkAccess(TenantID(report.spec.tenant), try context.principal())
                return try Self.mqttClientResponse(report)
            }
        }
        router.put("/api/v1/mqtt/clients/:id", needs: .transportAdmin) { request, context in
            try await api.handle {
                let body = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let id = try context.parameters.require("id")
                var spec = try Self.mqttClientSpec(body, id: id)
                guard spec.id == id else {
                    throw IoTError(.invalidArgument, "the body names client '\(spec.id)' but the path names '\(id)'")
                }
                spec.id = id
                try await Self.checkTenant(spec, api)
                let before = try await clients.client(id: id).spec.tenant
                try api.checkAccess(TenantID(before), try context.principal())
                try api.checkAccess(TenantID(spec.tenant), try context.principal())
                let report = try await clients.updateClient(spec)
                if before != spec.tenant { try await forget(id, tenant: before) }
                try await save(spec, body)
                return try Self.mqttClientResponse(report)
            }
        }
        router.delete("/api/v1/mqtt/clients/:id", needs: .transportAdmin) { _, context in
            try await api.handle {
                let id = try context.parameters.require("id")
                let tenant = try await clients.client(id: id).spec.tenant
                try api.checkAccess(TenantID(tenant), try context.principal())
                // Forgotten first: a client that still runs after a failed delete is not lost either.
                try await forget(id, tenant: tenant)
                try await clients.removeClient(id: id)
                return Response(status: .noContent)
            }
        }
        return router
    }

    /// Keeps a client's spec, as it was sent (with its id), in its tenant's definition store.
    private func save(_ spec: MQTTClientSpec, _ body: [UInt8]) async throws {
        try await definitions?.saveDefinition(
            .tenant(TenantID(spec.tenant)), kind: DefinitionKind.mqttClient, id: spec.id,
            body: Self.withID(body, spec.id))
    }

    private func forget(_ id: String, tenant: String) async throws {
        _ = try await definitions?.deleteDefinition(.tenant(TenantID(tenant)), kind: DefinitionKind.mqttClient, id: id)
    }

    /// The spec's tenant must exist (its devices' points have nowhere to go otherwise).
    ///
    /// - Throws: 400 naming the tenant.
    private static func checkTenant(_ spec: MQTTClientSpec, _ api: ManagementAPI) async throws {
        let tenant = TenantID(spec.tenant)
        guard tenant.isValid, try await api.registry.tenant(tenant) != nil else {
            throw APIError.badRequest(
                "tenant \"\(spec.tenant)\" of the MQTT client does not exist; create it with POST /api/v1/tenants")
        }
    }

    /// Decodes an ``IoTCore/MQTTClientSpec`` from a request body; with `id` (`PUT …/{id}`), a body without an
    /// `id` field takes the path's.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the missing or mistyped field.
    static func mqttClientSpec(_ body: [UInt8], id: String? = nil) throws(IoTError) -> MQTTClientSpec {
        let bytes = id.map { withID(body, $0) } ?? body
        do {
            return try JSONDecoder().decode(MQTTClientSpec.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, context) {
            let path = (context.codingPath + [key]).map(\.stringValue).joined(separator: ".")
            throw IoTError(.invalidArgument, "the MQTT client spec lacks \"\(path)\"")
        } catch let DecodingError.typeMismatch(_, context) {
            throw IoTError(
                .invalidArgument,
                "the MQTT client spec field \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
            )
        } catch {
            throw IoTError(.invalidArgument, "the body is not an MQTT client spec: \(error)")
        }
    }

    /// `body` with an `id` field, when it is a JSON object without one.
    static func withID(_ body: [UInt8], _ id: String) -> [UInt8] {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any], object["id"] == nil
        else { return body }
        object["id"] = id
        return (try? JSONSerialization.data(withJSONObject: object)).map { Array($0) } ?? body
    }

    /// A JSON response of a client report (or a list of them).
    static func mqttClientResponse(_ value: some Encodable, _ status: HTTPResponse.Status = .ok) throws(IoTError)
        -> Response
    {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try mqttClientJSON(value))))
    }

    /// A client report (or a list of them) as the API answers it: sorted keys, slashes unescaped.
    static func mqttClientJSON(_ value: some Encodable) throws(IoTError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw IoTError(.storage, "cannot encode the MQTT client report: \(error)")
        }
    }
}

extension MQTTClientRoutes {
    /// `iot_mqtt_clients{state}`, and per client (`client`, `tenant`): `iot_mqtt_client_connected` (1 or 0),
    /// `iot_mqtt_client_messages_in`, `…_bytes_in`, `…_messages_out`, `…_reconnects`, `…_stored`, `…_rejected`
    /// (the client's counts since it was created) and `iot_mqtt_client_bytes_in_per_second`.
    public func sampleMetrics() async {
        guard let reports = try? await clients.clients() else { return }
        var sample = SampledGauges.counts(
            "iot_mqtt_clients", states: reports.map(\.status.state.rawValue),
            all: ["idle", "connecting", "connected", "reconnecting", "failed", "stopped"])
        for r in reports {
            let dims = [("client", r.spec.id), ("tenant", r.spec.tenant)]
            let values: [(String, Int)] = [
                ("connected", r.status.state == .connected ? 1 : 0), ("messages_in", r.status.messagesIn),
                ("bytes_in", r.status.bytesIn), ("messages_out", r.status.messagesOut),
                ("reconnects", r.status.reconnects), ("stored", r.outcomes.stored),
                ("rejected", r.outcomes.rejected), ("bytes_in_per_second", r.bytesInPerSecond),
            ]
            for (name, value) in values {
                sample.append(.init(label: "iot_mqtt_client_" + name, dimensions: dims, value: Double(value)))
            }
        }
        gauges.update(sample)
    }
}
