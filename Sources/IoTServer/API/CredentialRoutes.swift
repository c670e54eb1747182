import Foundation
import Hummingbird
import IoTCore

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

/// The answer to `POST …/downlink`.
struct DownlinkResult: Encodable {
    var delivered: Int
}

extension ManagementServer {
    func credentialRoutes() -> RouteCollection<BasicRequestContext> {
        let router = RouteCollection(context: BasicRequestContext.self)
        let base = "/api/v1/tenants/:tenant/devices/:uid"
        router.get(RouterPath(base + "/credentials")) { _, context in
            try await self.handle {
                let (manager, identity) = try await self.credentialTarget(context)
                return try JSONOutput.response(try await manager.credentials(of: identity))
            }
        }
        router.delete(RouterPath(base + "/credentials")) { _, context in
            try await self.handle {
                let (manager, identity) = try await self.credentialTarget(context)
                return try JSONOutput.response(RevokedTokens(revoked: try await manager.revokeAll(of: identity)))
            }
        }
        router.post(RouterPath(base + "/credentials/passwords")) { request, context in
            try await self.handle {
                let (manager, identity) = try await self.credentialTarget(context)
                let input = try await JSONOutput.decode(
                    PasswordInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let label = try Self.checkedLabel(input.label ?? "primary")
                let issued = try await manager.addPassword(
                    for: identity, username: input.username ?? identity.deviceUID, password: input.password,
                    label: label, now: self.clock.now())
                return try JSONOutput.response(issued, status: .created)
            }
        }
        router.post(RouterPath(base + "/credentials/passwords/rotate")) { request, context in
            try await self.handle {
                let (manager, identity) = try await self.credentialTarget(context)
                let input = try await JSONOutput.decode(
                    RotateInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let now = self.clock.now()
                let label = try Self.checkedLabel(input.label ?? "rotation-\(now)")
                return try JSONOutput.response(
                    try await manager.rotatePassword(for: identity, label: label, now: now), status: .created)
            }
        }
        router.delete(RouterPath(base + "/credentials/passwords/:label")) { _, context in
            try await self.handle {
                let (manager, identity) = try await self.credentialTarget(context)
                let label = context.parameters.get("label") ?? ""
                let revoked = try await manager.revokePassword(of: identity, label: label)
                guard revoked else {
                    throw APIError.notFound("the device has no password credential labelled \"\(label)\"")
                }
                return try JSONOutput.response(RevokedOne(revoked: true))
            }
        }
        router.post(RouterPath(base + "/credentials/certificates")) { request, context in
            try await self.handle {
                let (manager, identity) = try await self.credentialTarget(context)
                let input = try await JSONOutput.decode(
                    CertificateInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                guard let match = CertificateMatch(rawValue: input.match ?? "fingerprint") else {
                    throw APIError.badRequest("\"match\" must be \"fingerprint\" or \"subject\"")
                }
                guard let value = input.value, !value.isEmpty else {
                    throw APIError.badRequest(
                        "\"value\" is required: the certificate's SHA-256 fingerprint or its RFC 4514 subject")
                }
                let label = try Self.checkedLabel(input.label ?? "primary")
                let info = try await manager.addCertificate(
                    for: identity, match: match, value: value, label: label, now: self.clock.now())
                return try JSONOutput.response(info, status: .created)
            }
        }
        router.delete(RouterPath(base + "/credentials/certificates/:label")) { _, context in
            try await self.handle {
                let (manager, identity) = try await self.credentialTarget(context)
                let label = context.parameters.get("label") ?? ""
                guard try await manager.revokeCertificate(of: identity, label: label) else {
                    throw APIError.notFound("the device has no certificate credential labelled \"\(label)\"")
                }
                return try JSONOutput.response(RevokedOne(revoked: true))
            }
        }
        router.post(RouterPath(base + "/downlink")) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                guard let sessions = self.sessions else {
                    throw APIError.notFound("downlink is not available: this server has no device sessions")
                }
                let body = try await JSONOutput.body(of: request, maxBytes: self.configuration.maxBodyBytes)
                guard (try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])) != nil else {
                    throw APIError.badRequest("the downlink payload must be JSON")
                }
                // One line: JSON outside strings is whitespace-insensitive and strings hold no raw newlines.
                let oneLine = body.map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 }
                let delivered = await sessions.send(
                    oneLine, to: DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid))
                guard delivered > 0 else {
                    throw APIError(
                        .conflict, .unavailable,
                        "device \"\(device.uid)\" has no live WebSocket or TCP connection; retry when it is connected")
                }
                return try JSONOutput.response(DownlinkResult(delivered: delivered))
            }
        }
        return router
    }

    private func credentialTarget(_ context: BasicRequestContext) async throws -> (
        any CredentialManager, DeviceIdentity
    ) {
        let scope = try await tenantScope(context)
        let device = try await existingDevice(scope, context)
        guard let manager = credentialManager else {
            throw APIError.notFound("credential management is not available on this server; use …/tokens")
        }
        return (manager, DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid))
    }

    static func checkedLabel(_ label: String) throws -> String {
        guard !label.isEmpty, label.count <= 128 else {
            throw APIError.badRequest("the credential label must be 1–128 characters")
        }
        return label
    }
}
