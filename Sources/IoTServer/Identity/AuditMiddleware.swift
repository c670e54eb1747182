import HTTPTypes
import Hummingbird
import IoTCore

/// Writes an audit entry for every call of the routes it is attached to that may change something (`POST`,
/// `PUT`, `PATCH`, `DELETE`): the principal, the tenant of the path, the route, the path, the status answered
/// (also when the handler threw) and the client's address. It runs inside ``AuthenticationMiddleware``.
struct AuditMiddleware: RouterMiddleware {
    typealias Context = ManagementContext
    let identity: IdentityService

    func handle(
        _ request: Request, context: ManagementContext, next: (Request, ManagementContext) async throws -> Response
    ) async throws -> Response {
        guard request.method != .get, request.method != .head, request.method != .options else {
            return try await next(request, context)
        }
        do {
            let response = try await next(request, context)
            await record(request, context, status: response.status)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            await record(request, context, status: status)
            throw error
        }
    }

    private func record(_ request: Request, _ context: ManagementContext, status: HTTPResponse.Status) async {
        // The tenant acted on; a call on a tenant the caller may not work on is logged in the caller's own tenant
        // (its administrators see the attempt; the other tenant's learn nothing of a foreign user).
        var tenant = context.parameters.get("tenant").map { TenantID($0) } ?? context.identity?.tenant
        if let path = tenant, let principal = context.identity, !principal.mayAccess(path) { tenant = principal.tenant }
        await identity.record(
            actor: context.identity?.actor ?? "", tenant: tenant,
            action: "\(request.method.rawValue) \(context.endpointPath ?? request.uri.path)", target: request.uri.path,
            status: status.code, context.clientAddress)
    }
}
