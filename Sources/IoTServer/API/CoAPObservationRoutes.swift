import Foundation
import Hummingbird
import IoTCore

extension ManagementServer {
    /// `/api/v1/coap/observations`: the resources the platform observes on CoAP devices (RFC 7641), managed
    /// at run time as MQTT clients are (create, remove, monitor; re-registration is the manager's).
    ///
    /// The routes are not under `/tenants/{tenant}` because an observation's id is unique in the instance
    /// (``IoTCore/CoAPObservationAdministration`` has one namespace) and its spec carries its tenant, as an MQTT
    /// client spec does. The tenant must exist; an observation created here is kept in the definition store
    /// of that tenant (kind `coap-observation`) and comes back with ``restoreDefinitions()``.
    func coapObservationRoutes() -> RouteCollection<BasicRequestContext> {
        let router = RouteCollection(context: BasicRequestContext.self)
        let path = "/api/v1/coap/observations"
        router.get(RouterPath(path)) { _, _ in
            try await self.handle { try JSONOutput.response(try self.coapObserverManager().list()) }
        }
        router.get(RouterPath(path + "/:id")) { _, context in
            try await self.handle {
                let id = context.parameters.get("id") ?? ""
                guard let report = try self.coapObserverManager().report(id: id) else {
                    throw Self.unknownObservation(id)
                }
                return try JSONOutput.response(report)
            }
        }
        router.post(RouterPath(path)) { request, _ in
            try await self.handle {
                let manager = try self.coapObserverManager()
                let bytes = try await JSONOutput.body(of: request, maxBytes: self.configuration.maxBodyBytes)
                let spec = try JSONOutput.decode(CoAPObservationSpec.self, from: bytes)
                try validateIdentifier(spec.id, "observation id")
                let tenant = TenantID(spec.tenant)
                guard tenant.isValid, try await self.registry.tenant(tenant) != nil else {
                    throw APIError.badRequest(
                        "tenant \"\(spec.tenant)\" of the observation does not exist; create it with POST /api/v1/tenants"
                    )
                }
                try manager.checkDestination(spec)
                let report = try manager.create(spec)
                do {
                    try await self.saveObservation(spec)
                } catch {
                    // Never keep an observation that would not come back after a restart.
                    try? manager.remove(id: spec.id)
                    throw error
                }
                return try JSONOutput.response(report, status: .created)
            }
        }
        router.delete(RouterPath(path + "/:id")) { _, context in
            try await self.handle {
                let manager = try self.coapObserverManager()
                let id = context.parameters.get("id") ?? ""
                var found = false
                if let report = manager.report(id: id) {
                    // Forgotten first: an observation that still runs after a failed delete is not lost either.
                    _ = try await self.definitions?.deleteDefinition(
                        .tenant(TenantID(report.spec.tenant)), kind: DefinitionKind.coapObservation, id: id)
                    try? manager.remove(id: id)
                    found = true
                } else if let definitions = self.definitions {
                    // Kept from an earlier run but not restored (see restoreDefinitions()): forget it.
                    for tenant in try await self.registry.tenants() {
                        let scope = AccessScope.tenant(tenant.id)
                        if try await definitions.deleteDefinition(scope, kind: DefinitionKind.coapObservation, id: id) {
                            found = true
                        }
                    }
                }
                guard found else { throw Self.unknownObservation(id) }
                return Response(status: .noContent)
            }
        }
        return router
    }

    /// Keeps an observation created through the API in its tenant's definition store.
    private func saveObservation(_ spec: CoAPObservationSpec) async throws {
        guard let definitions else { return }
        try await definitions.saveDefinition(
            .tenant(TenantID(spec.tenant)), kind: DefinitionKind.coapObservation, id: spec.id,
            body: try Self.definitionBytes(spec))
    }

    /// Creates again an observation kept by an earlier run (``restoreDefinitions()``).
    func restoreObservation(_ body: [UInt8], tenant: TenantID) throws {
        guard let coapObservations else { return }
        var spec = try JSONOutput.decode(CoAPObservationSpec.self, from: body)
        spec.tenant = tenant.rawValue
        try coapObservations.create(spec)
    }

    func coapObserverManager() throws -> any CoAPObservationAdministration {
        guard let coapObservations else { throw APIError.notFound("this instance runs no CoAP observer manager") }
        return coapObservations
    }

    private static func unknownObservation(_ id: String) -> APIError {
        APIError.notFound("no CoAP observation \"\(id)\"; list them with GET /api/v1/coap/observations")
    }
}
