import HTTPTypes
import Hummingbird
import IoTCore
import NIOCore

/// Run-time administration of MQTT ingest clients, as `/api/v1/mqtt/clients` needs it.
///
/// IoTServer compiles no C, so it does not know the MQTT types: `IoTProtocols`' `MQTTClientManager`
/// does the work and speaks JSON here (a client spec in, a report out; see `openapi.yaml`). Errors are
/// ``IoTCore/IoTError``s: `invalidArgument` answers 400, `notFound` 404, `conflict` 409 (an existing id,
/// or a limit of the instance, with the reason).
public protocol MQTTClientAdministration: Sendable {
    /// A JSON array of every client's report.
    func listClientsJSON() async throws -> [UInt8]
    /// The JSON report of one client.
    func clientJSON(id: String) async throws -> [UInt8]
    /// Creates a client from a JSON spec; returns its JSON report.
    func createClientJSON(_ body: [UInt8]) async throws -> [UInt8]
    /// Replaces the spec of client `id`; returns its JSON report.
    func updateClientJSON(id: String, _ body: [UInt8]) async throws -> [UInt8]
    /// Disconnects and removes a client.
    func removeClient(id: String) async throws
}

extension ManagementServer {
    func addMQTTClientRoutes(to router: RouterGroup<BasicRequestContext>) {
        @Sendable func json(_ bytes: [UInt8], _ status: HTTPResponse.Status = .ok) -> Response {
            Response(
                status: status, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        @Sendable func administration() throws -> any MQTTClientAdministration {
            guard let mqttClients else {
                throw APIError.notFound("this instance runs no MQTT client manager")
            }
            return mqttClients
        }
        router.get("/api/v1/mqtt/clients") { _, _ in
            try await self.handle { json(try await administration().listClientsJSON()) }
        }
        router.post("/api/v1/mqtt/clients") { request, _ in
            try await self.handle {
                let body = try await JSONOutput.body(of: request, maxBytes: self.configuration.maxBodyBytes)
                return json(try await administration().createClientJSON(body), .created)
            }
        }
        router.get("/api/v1/mqtt/clients/:id") { _, context in
            try await self.handle {
                json(try await administration().clientJSON(id: try context.parameters.require("id")))
            }
        }
        router.put("/api/v1/mqtt/clients/:id") { request, context in
            try await self.handle {
                let body = try await JSONOutput.body(of: request, maxBytes: self.configuration.maxBodyBytes)
                return json(try await administration().updateClientJSON(id: try context.parameters.require("id"), body))
            }
        }
        router.delete("/api/v1/mqtt/clients/:id") { _, context in
            try await self.handle {
                try await administration().removeClient(id: try context.parameters.require("id"))
                return Response(status: .noContent)
            }
        }
    }
}
