import Hummingbird
import IoTCore

/// The body of `POST /api/v1/tenants`.
struct TenantInput: Decodable {
    var id: String
    var name: String?
    var policy: IngestPolicy?
    var quotas: TenantQuotas?
}

/// The body of `PATCH /api/v1/tenants/{tenant}`: every field that is set is changed.
struct TenantChange: Decodable {
    var name: String?
    var policy: IngestPolicy?
    var status: Tenant.Status?
    var quotas: TenantQuotas?
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
                try input.quotas?.validate()
                let tenant = Tenant(
                    id: id, name: input.name, policy: input.policy ?? IngestPolicy(), quotas: input.quotas ?? .init())
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
        router.patch("/api/v1/tenants/:tenant", needs: .tenantWrite) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let change = try await JSONOutput.decode(
                    TenantChange.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                guard var tenant = try await self.registry.tenant(scope.tenant) else {
                    throw APIError.notFound("tenant \"\(scope.tenant)\" does not exist")
                }
                try change.quotas?.validate()
                if let name = change.name { tenant.name = name }
                if let policy = change.policy { tenant.policy = policy }
                if let status = change.status { tenant.status = status }
                if let quotas = change.quotas { tenant.quotas = quotas }
                try await self.registry.saveTenant(tenant)
                self.ingestor?.invalidate(tenant: tenant.id)
                self.identity?.forgetResolvedCredentials()
                return try JSONOutput.response(tenant)
            }
        }
        router.delete("/api/v1/tenants/:tenant", needs: .tenantWrite) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                try await self.deleteTenant(scope.tenant, context)
                return Response(status: .noContent)
            }
        }
        return router
    }
}

extension ManagementAPI {
    /// Deletes a tenant and everything of it: first what reaches out (device credentials, with their broker
    /// accounts; MQTT clients and their broker sessions; CoAP observations; Modbus devices; users, roles and API
    /// keys), so that a failure leaves the tenant in place to delete again; then the tenant, whose database file
    /// (products, devices, points, rule state, definitions, outbox) goes with it.
    func deleteTenant(_ tenant: TenantID, _ context: ManagementContext) async throws {
        let scope = AccessScope.tenant(tenant)
        for device in try await registry.devices(scope, product: nil) {
            let identity = DeviceIdentity(tenant: tenant, deviceUID: device.uid)
            try await tokens.revokeTokens(of: identity)
            try await credentials?.revokeAll(of: identity)
        }
        for resource in resources { try await resource.deleteTenant(tenant, self) }
        try await identity?.store.deleteTenant(tenant)
        identity?.forgetResolvedCredentials()
        ingestor?.invalidate(tenant: tenant)
        // What the ingestor acknowledged for the tenant is committed before its file goes (new messages of its
        // devices are refused from now on: the tenant is unknown).
        try await registry.saveTenant(
            (try await registry.tenant(tenant)).map {
                var t = $0
                t.status = .suspended
                return t
            } ?? Tenant(id: tenant, status: .suspended))
        ingestor?.invalidate(tenant: tenant)
        if let ingestor { try await ingestor.waitUntilIdle(within: .seconds(10)) }
        try await registry.deleteTenant(tenant)
        ingestor?.invalidate(tenant: tenant)
        activity?.forget(tenant)
    }
}
