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

/// Checks an identifier of a product, device, rule, job or other definition: 1–128 printable ASCII
/// characters other than `/ ? # %` and space (``IoTCore/IoTLimits/checkIdentifier(_:_:)``, the rule the
/// ingest path applies to device uids too).
func validateIdentifier(_ value: String, _ what: String) throws {
    do {
        try IoTLimits.checkIdentifier(value, what)
    } catch {
        throw APIError.badRequest(error.message)
    }
}

/// Checks a signal name (``IoTCore/IoTLimits/checkSignalName(_:_:)``, the rule of every path).
func validateSignalName(_ value: String, _ what: String = "signal name") throws {
    do {
        try IoTLimits.checkSignalName(value, what)
    } catch {
        throw APIError.badRequest(error.message)
    }
}
