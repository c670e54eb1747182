import Hummingbird
import IoTCore

/// The body of `POST …/devices/{uid}/tokens`.
struct TokenInput: Decodable {
    var label: String?
}

/// The answer to `POST …/devices/{uid}/tokens`: the token, shown this once.
struct IssuedToken: Encodable {
    var token: String
    var label: String
}

/// The answer to `DELETE …/devices/{uid}/tokens`.
struct RevokedTokens: Encodable {
    var revoked: Int
}

extension ManagementAPI {
    func tokenRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = RouterPath("/api/v1/tenants/:tenant/devices/:uid/tokens")
        router.post(path, needs: .credentialWrite) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                let input = try await JSONOutput.decode(
                    TokenInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let label = input.label ?? "api"
                guard !label.isEmpty, label.count <= 128 else {
                    throw APIError.badRequest("the token label must be 1–128 characters")
                }
                let identity = DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid)
                let token = try await self.tokens.issueToken(for: identity, label: label, now: self.clock.now())
                return try JSONOutput.response(IssuedToken(token: token, label: label), status: .created)
            }
        }
        router.get(path, needs: .deviceRead) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                return try JSONOutput.response(
                    try await self.tokens.tokens(of: DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid)))
            }
        }
        router.delete(path, needs: .credentialWrite) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                let n = try await self.tokens.revokeTokens(
                    of: DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid))
                return try JSONOutput.response(RevokedTokens(revoked: n))
            }
        }
        return router
    }
}
