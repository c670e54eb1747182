import HTTPTypes
public import Hummingbird
public import HummingbirdAuth
public import IoTCore

/// Resolves the caller of every request of the routes it is attached to (the `/api` route group of
/// ``ManagementServer``) into a ``Principal``, and refuses the request with 401 when there is none.
///
/// The credential is `Authorization: Bearer <credential>` or `X-API-Key: <credential>`: the bootstrap admin
/// key (compared in constant time), an API key (`iotk_…`), or a user's access token. It is group middleware
/// and looks at no path: whatever spelling of a path the router matches to an API route (`//api/v1/…`, a
/// trailing slash), the route's middleware runs.
public struct AuthenticationMiddleware: AuthenticatorMiddleware {
    public typealias Context = ManagementContext
    let adminKey: [UInt8]?
    let identity: IdentityService?

    /// Authenticates with the bootstrap `adminKey` and, when given, the users and API keys of `identity`.
    public init(adminKey: String?, identity: IdentityService?) {
        self.adminKey = adminKey.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.identity = identity
    }

    /// The principal of the request's credential, or `nil` when it presents none.
    ///
    /// - Throws: 401 saying why a presented credential is refused.
    public func authenticate(request: Request, context: ManagementContext) async throws -> Principal? {
        guard let presented = Self.presentedKey(request.headers) else { return nil }
        return try await principal(of: presented)
    }

    /// The principal of a presented credential.
    ///
    /// - Throws: 401 saying why the credential is refused.
    func principal(of presented: String) async throws -> Principal {
        if let adminKey, Self.constantTimeEqual(Array(presented.utf8), adminKey) { return .adminKey }
        if let identity, let principal = try await identity.authenticate(presented) { return principal }
        throw APIError(
            .unauthorized, .unauthorized,
            identity == nil
                ? "the admin key is not valid; check the configured adminAPIKey"
                : "the credential is not valid: send an access token from POST /api/v1/auth/login, an API key, or the admin key"
        )
    }

    public func handle(
        _ request: Request, context: ManagementContext, next: (Request, ManagementContext) async throws -> Response
    ) async throws -> Response {
        guard adminKey != nil || identity != nil else {
            return JSONOutput.error(
                status: .unauthorized, code: IoTError.Code.unauthorized.name,
                message:
                    "the management API has no admin key configured; set adminAPIKey (iotd: api.adminKey) and send it as \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\""
            )
        }
        let principal: Principal?
        do {
            principal = try await authenticate(request: request, context: context)
        } catch {
            let api = APIError(error)
            return JSONOutput.error(status: api.status, code: api.code, message: api.message)
        }
        guard let principal else {
            return JSONOutput.error(
                status: .unauthorized, code: IoTError.Code.unauthorized.name,
                message: identity == nil
                    ? "no admin key; send \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\""
                    : "sign in: send \"Authorization: Bearer <access token>\" (POST /api/v1/auth/login), or an API key or the admin key as \"X-API-Key\""
            )
        }
        var context = context
        context.identity = principal
        return try await next(request, context)
    }

    static func presentedKey(_ headers: HTTPFields) -> String? {
        if let apiKey = headers[.apiKey], !apiKey.isEmpty { return apiKey }
        if let auth = headers[.authorization], auth.count > 7, auth.prefix(7).lowercased() == "bearer " {
            return String(auth.dropFirst(7))
        }
        return nil
    }

    /// Compares without an early exit, so the time taken does not tell how much of the key matched.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}

extension HTTPField.Name {
    /// `X-API-Key`.
    static let apiKey = HTTPField.Name("X-API-Key")!
    /// `X-Total-Count`: how many items a paged listing matched.
    static let totalCount = HTTPField.Name("X-Total-Count")!
}

extension RouterMethods where Context == ManagementContext {
    /// Adds a route that only principals holding `permission` reach (403 naming it otherwise): the permission is
    /// group middleware of the route, as `openapi.yaml`'s `x-permission` names it.
    @discardableResult
    public func on(
        _ path: RouterPath, method: HTTPRequest.Method, needs permission: Permission,
        use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator
    ) -> Self {
        let denied = APIError(
            .forbidden, .forbidden,
            "this call needs the permission \"\(permission)\", which your roles or key do not grant")
        group()
            .add(
                middleware: AuthorizationPolicyMiddleware(
                    PermissionPolicy<Principal>(permission), deniedError: denied, context: Context.self)
            )
            .on(path, method: method, use: handler)
        return self
    }

    /// ``on(_:method:needs:use:)`` for `GET`.
    @discardableResult
    public func get(
        _ path: RouterPath, needs permission: Permission,
        use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator
    ) -> Self { on(path, method: .get, needs: permission, use: handler) }

    /// ``on(_:method:needs:use:)`` for `POST`.
    @discardableResult
    public func post(
        _ path: RouterPath, needs permission: Permission,
        use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator
    ) -> Self { on(path, method: .post, needs: permission, use: handler) }

    /// ``on(_:method:needs:use:)`` for `PUT`.
    @discardableResult
    public func put(
        _ path: RouterPath, needs permission: Permission,
        use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator
    ) -> Self { on(path, method: .put, needs: permission, use: handler) }

    /// ``on(_:method:needs:use:)`` for `PATCH`.
    @discardableResult
    public func patch(
        _ path: RouterPath, needs permission: Permission,
        use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator
    ) -> Self { on(path, method: .patch, needs: permission, use: handler) }

    /// ``on(_:method:needs:use:)`` for `DELETE`.
    @discardableResult
    public func delete(
        _ path: RouterPath, needs permission: Permission,
        use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator
    ) -> Self { on(path, method: .delete, needs: permission, use: handler) }
}
