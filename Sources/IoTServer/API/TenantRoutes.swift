import Hummingbird
import IoTCore

/// The body of `POST /api/v1/tenants`.
struct TenantInput: Decodable {
    var id: String
    var name: String?
    var policy: IngestPolicy?
}

extension ManagementAPI {
    func tenantRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        router.get("/api/v1/tenants", needs: .tenantRead) { _, context in
            try await self.handle {
                // A tenant's principal sees its own tenant only.
                let principal = try context.principal()
                return try JSONOutput.response(try await self.registry.tenants().filter { principal.mayAccess($0.id) })
            }
        }
        router.post("/api/v1/tenants", needs: .tenantWrite) { request, _ in
            try await self.handle {
                let input = try await JSONOutput.decode(
                    TenantInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let id = TenantID(input.id)
                guard id.isValid else {
                    throw APIError.badRequest(
                        "tenant id \"\(input.id)\" is not valid; use 1–64 characters of A–Z a–z 0–9 - _")
                }
                guard try await self.registry.tenant(id) == nil else {
                    throw APIError(.conflict, .conflict, "tenant \"\(id)\" already exists")
                }
                let tenant = Tenant(id: id, name: input.name, policy: input.policy ?? IngestPolicy())
                try await self.registry.saveTenant(tenant)
                self.ingestor?.invalidate(tenant: id)
                return try JSONOutput.response(tenant, status: .created)
            }
        }
        router.get("/api/v1/tenants/:tenant", needs: .tenantRead) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                return try JSONOutput.response(try await self.registry.tenant(scope.tenant))
            }
        }
        return router
    }
}
