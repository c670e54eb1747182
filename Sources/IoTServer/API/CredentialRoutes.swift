public import Hummingbird
public import IoTCore

/// The body of `POST …/credentials/passwords`.
struct PasswordInput: Decodable {
    var username: String?
    var password: String?
    var label: String?
}

/// The body of `POST …/credentials/certificates`.
struct CertificateInput: Decodable {
    var match: String?
    var value: String?
    var label: String?
}

/// The body of `POST …/credentials/passwords/rotate`.
struct RotateInput: Decodable {
    var label: String?
}

/// The answer to `DELETE …/credentials/passwords/{label}`.
struct RevokedOne: Encodable {
    var revoked: Bool
}

/// `…/tenants/{tenant}/devices/{uid}/credentials`: a device's passwords (added, rotated, revoked) and
/// certificates (by fingerprint or subject) through a ``IoTCore/CredentialManager``. With these routes served,
/// deleting a device revokes its credentials too.
public struct CredentialRoutes: ManagementRoutes {
    let manager: any CredentialManager

    /// Serves the credentials `manager` keeps (IoTAuth's `DeviceAuthService`).
    public init(manager: any CredentialManager) {
        self.manager = manager
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let base = "/api/v1/tenants/:tenant/devices/:uid"
        router.get(RouterPath(base + "/credentials"), needs: .deviceRead) { _, context in
            try await api.handle {
                let identity = try await Self.credentialTarget(context, api)
                return try JSONOutput.response(try await manager.credentials(of: identity))
            }
        }
        router.delete(RouterPath(base + "/credentials"), needs: .credentialWrite) { _, context in
            try await api.handle {
                let identity = try await Self.credentialTarget(context, api)
                return try JSONOutput.response(RevokedTokens(revoked: try await manager.revokeAll(of: identity)))
            }
        }
        router.post(RouterPath(base + "/credentials/passwords"), needs: .credentialWrite) { request, context in
            try await api.handle {
                let identity = try await Self.credentialTarget(context, api)
                let input = try await JSONOutput.decode(
                    PasswordInput.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                let label = try Self.checkedLabel(input.label ?? "primary")
                let issued = try await manager.addPassword(
                    for: identity, username: input.username ?? identity.deviceUID, password: input.password,
                    label: label, now: api.clock.now())
                return try JSONOutput.response(issued, status: .created)
            }
        }
        router.post(RouterPath(base + "/credentials/passwords/rotate"), needs: .credentialWrite) { request, context in
            try await api.handle {
                let identity = try await Self.credentialTarget(context, api)
                let input = try await JSONOutput.decode(
                    RotateInput.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                let now = api.clock.now()
                let label = try Self.checkedLabel(input.label ?? "rotation-\(now)")
                return try JSONOutput.response(
                    try await manager.rotatePassword(for: identity, label: label, now: now), status: .created)
            }
        }
        router.delete(RouterPath(base + "/credentials/passwords/:label"), needs: .credentialWrite) { _, context in
            try await api.handle {
                let identity = try await Self.credentialTarget(context, api)
                let label = context.parameters.get("label") ?? ""
                let revoked = try await manager.revokePassword(of: identity, label: label)
                guard revoked else {
                    throw APIError.notFound("the device has no password credential labelled \"\(label)\"")
                }
                return try JSONOutput.response(RevokedOne(revoked: true))
            }
        }
        router.post(RouterPath(base + "/credentials/certificates"), needs: .credentialWrite) { request, context in
            try await api.handle {
                let identity = try await Self.credentialTarget(context, api)
                let input = try await JSONOutput.decode(
                    CertificateInput.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                guard let match = CertificateMatch(rawValue: input.match ?? "fingerprint") else {
                    throw APIError.badRequest("\"match\" must be \"fingerprint\" or \"subject\"")
                }
                guard let value = input.value, !value.isEmpty else {
                    throw APIError.badRequest(
                        "\"value\" is required: the certificate's SHA-256 fingerprint or its RFC 4514 subject")
                }
                let label = try Self.checkedLabel(input.label ?? "primary")
                let info = try await manager.addCertificate(
                    for: identity, match: match, value: value, label: label, now: api.clock.now())
                return try JSONOutput.response(info, status: .created)
            }
        }
        router.delete(RouterPath(base + "/credentials/certificates/:label"), needs: .credentialWrite) { _, context in
            try await api.handle {
                let identity = try await Self.credentialTarget(context, api)
                let label = context.parameters.get("label") ?? ""
                guard try await manager.revokeCertificate(of: identity, label: label) else {
                    throw APIError.notFound("the device has no certificate credential labelled \"\(label)\"")
                }
                return try JSONOutput.response(RevokedOne(revoked: true))
            }
        }
        return router
    }

    /// The device of the path, which must exist.
    private static func credentialTarget(_ context: ManagementContext, _ api: ManagementAPI) async throws
        -> DeviceIdentity
    {
        let scope = try await api.tenantScope(context)
        let device = try await api.existingDevice(scope, context)
        return DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid)
    }

    static func checkedLabel(_ label: String) throws -> String {
        guard !label.isEmpty, label.count <= 128 else {
            throw APIError.badRequest("the credential label must be 1–128 characters")
        }
        return label
    }
}
