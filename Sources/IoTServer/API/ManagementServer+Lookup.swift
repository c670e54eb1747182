import Hummingbird
import IoTCore
import Logging

extension ManagementServer {
    /// The `{tenant}` of the path, which must exist (404 otherwise).
    func tenantScope(_ context: BasicRequestContext) async throws -> AccessScope {
        let raw = context.parameters.get("tenant") ?? ""
        let id = TenantID(raw)
        guard id.isValid, try await registry.tenant(id) != nil else {
            throw APIError(
                .notFound, .notFound, "tenant \"\(raw)\" does not exist; create it with POST /api/v1/tenants")
        }
        return .tenant(id)
    }

    /// The `{uid}` device of the path, which must exist in the tenant (404 otherwise).
    func existingDevice(_ scope: AccessScope, _ context: BasicRequestContext) async throws -> Device {
        let uid = context.parameters.get("uid") ?? ""
        guard let device = try await registry.device(scope, uid: uid) else {
            throw APIError(.notFound, .unknownDevice, "device \"\(uid)\" does not exist in tenant \"\(scope.tenant)\"")
        }
        return device
    }

    /// The `{id}` product of the path, which must exist in the tenant (404 otherwise).
    func existingProduct(_ scope: AccessScope, _ context: BasicRequestContext) async throws -> Product {
        let id = context.parameters.get("id") ?? ""
        guard let product = try await registry.product(scope, id: ProductID(id)) else {
            throw APIError(.notFound, .notFound, "product \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
        }
        return product
    }

    /// Runs a handler, turning every error into the JSON error shape.
    func handle(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch {
            let api = APIError(error)
            if api.status == .internalServerError {
                logger.error("management API request failed", metadata: ["error": "\(error)"])
            }
            throw api
        }
    }
}

/// Checks an identifier of a product, device or signal: 1–128 printable ASCII characters other than
/// `/ ? # %` and space, so it can stand in a URL path unescaped.
func validateIdentifier(_ value: String, _ what: String) throws {
    let ok =
        !value.isEmpty && value.utf8.count <= 128
        && value.utf8.allSatisfy { c in c > 0x20 && c < 0x7F && c != 0x2F && c != 0x3F && c != 0x23 && c != 0x25 }
    guard ok else {
        throw APIError.badRequest(
            "\(what) \"\(value)\" is not valid; use 1–128 printable ASCII characters without spaces, '/', '?', '#' or '%'"
        )
    }
}
