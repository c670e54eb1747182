import Foundation
import HTTPTypes
public import Hummingbird
public import IoTCore
import NIOCore

/// `/api/v1/mqtt/clients`: MQTT ingest clients managed at run time through an
/// ``IoTCore/MQTTClientAdministration`` (IoTMQTT's `MQTTClientManager`). A client spec in, a report out (see
/// `openapi.yaml`); errors are ``IoTCore/IoTError``s: `invalidArgument` answers 400, `notFound` 404,
/// `conflict` 409 (an existing id, or a limit of the instance, with the reason).
public struct MQTTClientRoutes: ManagementRoutes {
    let clients: any MQTTClientAdministration

    /// Serves the clients of `clients`.
    public init(clients: any MQTTClientAdministration) {
        self.clients = clients
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<BasicRequestContext> {
        let router = RouteCollection(context: BasicRequestContext.self)
        router.get("/api/v1/mqtt/clients") { _, _ in
            try await api.handle { try Self.mqttClientResponse(try await clients.clients()) }
        }
        router.post("/api/v1/mqtt/clients") { request, _ in
            try await api.handle {
                let body = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                return try Self.mqttClientResponse(
                    try await clients.createClient(try Self.mqttClientSpec(body)), .created)
            }
        }
        router.get("/api/v1/mqtt/clients/:id") { _, context in
            try await api.handle {
                try Self.mqttClientResponse(try await clients.client(id: try context.parameters.require("id")))
            }
        }
        router.put("/api/v1/mqtt/clients/:id") { request, context in
            try await api.handle {
                let body = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let id = try context.parameters.require("id")
                var spec = try Self.mqttClientSpec(body, id: id)
                guard spec.id == id else {
                    throw IoTError(.invalidArgument, "the body names client '\(spec.id)' but the path names '\(id)'")
                }
                spec.id = id
                return try Self.mqttClientResponse(try await clients.updateClient(spec))
            }
        }
        router.delete("/api/v1/mqtt/clients/:id") { _, context in
            try await api.handle {
                try await clients.removeClient(id: try context.parameters.require("id"))
                return Response(status: .noContent)
            }
        }
        return router
    }

    /// Decodes an ``IoTCore/MQTTClientSpec`` from a request body; with `id` (`PUT …/{id}`), a body without an
    /// `id` field takes the path's.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the missing or mistyped field.
    static func mqttClientSpec(_ body: [UInt8], id: String? = nil) throws(IoTError) -> MQTTClientSpec {
        var bytes = body
        if let id, var object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
            object["id"] == nil
        {
            object["id"] = id
            bytes = (try? JSONSerialization.data(withJSONObject: object)).map { Array($0) } ?? body
        }
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
