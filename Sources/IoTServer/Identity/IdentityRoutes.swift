import Foundation
import HTTPTypes
import Hummingbird
import IoTCore

/// A user as the API shows it: no password hash.
struct UserView: Encodable {
    var username: String
    var tenant: String?
    var displayName: String
    var email: String?
    var phone: String?
    var contacts: [String: String]?
    var roles: [String]
    var department: String?
    var grants: DataGrants?
    var status: UserAccount.Status
    var locked: Bool
    var passwordChangedAt: Int64?
    var createdAt: Int64

    init(_ user: UserAccount, now: Int64) {
        username = user.username
        tenant = user.tenant?.rawValue
        displayName = user.displayName
        email = user.email
        phone = user.phone
        contacts = user.contacts
        roles = user.roles
        department = user.department
        grants = user.grants
        status = user.status
        locked = (user.lockedUntil ?? 0) > now
        passwordChangedAt = user.passwordChangedAt
        createdAt = user.createdAt
    }
}

/// An API key as listed: never the key itself.
struct APIKeyView: Encodable {
    var id: String
    var name: String
    var tenant: String?
    var owner: String?
    var permissions: [Permission]
    var createdAt: Int64
    var expiresAt: Int64?
    /// The key itself: only in the answer to its creation.
    var key: String?

    init(_ secret: IdentitySecret, key: String? = nil) {
        id = secret.id
        name = secret.name
        tenant = secret.tenant?.rawValue
        owner = secret.username
        permissions = secret.permissions.sorted()
        createdAt = secret.createdAt
        expiresAt = secret.expiresAt
        self.key = key
    }
}

struct LoginInput: Decodable {
    /// The user's tenant, when the client names it (a platform user has none): a user of another tenant is
    /// refused as a wrong password is.
    var tenant: String?
    var username: String
    var password: String
}

/// The body of `POST /api/v1/tenants/{tenant}/departments`: the id is made from the name when left out.
struct DepartmentInput: Decodable {
    var id: String?
    var name: String?
    var parent: String?
}

struct RefreshInput: Decodable {
    var refreshToken: String
}

struct LinkInput: Decodable {
    var token: String
    var password: String
}

struct ResetRequestInput: Decodable {
    var username: String
}

struct PasswordChangeInput: Decodable {
    var currentPassword: String
    var newPassword: String
}

struct APIKeyInput: Decodable {
    var name: String
    var permissions: Set<Permission>
    var expiresAt: Int64?
}

extension ManagementAPI {
    /// The routes that need no sign-in: `POST /api/v1/auth/login`, `…/refresh`, `…/logout`, `…/activate`,
    /// `…/password-reset` and `…/password-reset/confirm`.
    func publicIdentityRoutes(_ identity: IdentityService) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let base = "/api/v1/auth"
        router.post(RouterPath(base + "/login")) { request, context in
            try await self.handle {
                let input = try await JSONOutput.decode(
                    LoginInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                return try JSONOutput.response(
                    try await identity.login(
                        username: input.username, password: input.password, tenant: input.tenant.map { TenantID($0) },
                        client: context.clientAddress))
            }
        }
        router.post(RouterPath(base + "/refresh")) { request, context in
            try await self.handle {
                let input = try await JSONOutput.decode(
                    RefreshInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                return try JSONOutput.response(
                    try await identity.refresh(input.refreshToken, client: context.clientAddress))
            }
        }
        router.post(RouterPath(base + "/logout")) { request, context in
            try await self.handle {
                let input = try await JSONOutput.decode(
                    RefreshInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                try await identity.logout(input.refreshToken, client: context.clientAddress)
                return Response(status: .noContent)
            }
        }
        router.post(RouterPath(base + "/activate")) { request, context in
            try await self.handle {
                let input = try await JSONOutput.decode(
                    LinkInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                try await identity.activate(token: input.token, password: input.password, client: context.clientAddress)
                return Response(status: .noContent)
            }
        }
        router.post(RouterPath(base + "/password-reset")) { request, context in
            try await self.handle {
                let input = try await JSONOutput.decode(
                    ResetRequestInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                await identity.requestPasswordReset(username: input.username, client: context.clientAddress)
                return Response(status: .accepted)
            }
        }
        router.post(RouterPath(base + "/password-reset/confirm")) { request, context in
            try await self.handle {
                let input = try await JSONOutput.decode(
                    LinkInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                try await identity.resetPassword(
                    token: input.token, password: input.password, client: context.clientAddress)
                return Response(status: .noContent)
            }
        }
        return router
    }

    /// The signed-in caller's own routes (any principal): `GET /api/v1/auth/me`, `POST /api/v1/auth/password`
    /// and the user's own API keys at `/api/v1/auth/api-keys`.
    func selfIdentityRoutes(_ identity: IdentityService) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let base = "/api/v1/auth"
        router.get(RouterPath(base + "/me")) { _, context in
            try await self.handle {
                let principal = try context.principal()
                struct Me: Encodable {
                    var actor: String
                    var username: String?
                    var tenant: String?
                    var permissions: [Permission]
                    var user: UserView?
                }
                var user: UserView? = nil
                if case .user(let name) = principal.kind, let account = try await identity.store.user(name) {
                    user = UserView(account, now: self.clock.now())
                }
                return try JSONOutput.response(
                    Me(
                        actor: principal.actor, username: principal.username, tenant: principal.tenant?.rawValue,
                        permissions: principal.permissions.sorted(), user: user))
            }
        }
        router.post(RouterPath(base + "/password")) { request, context in
            try await self.handle {
                let input = try await JSONOutput.decode(
                    PasswordChangeInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                try await identity.changePassword(
                    try context.principal(), current: input.currentPassword, new: input.newPassword)
                return Response(status: .noContent)
            }
        }
        router.get(RouterPath(base + "/api-keys")) { _, context in
            try await self.handle {
                let (principal, username) = try Self.signedInUser(context)
                return try JSONOutput.response(
                    try await identity.apiKeys(tenant: principal.tenant, owner: username).map { APIKeyView($0) })
            }
        }
        router.post(RouterPath(base + "/api-keys")) { request, context in
            try await self.handle {
                let (principal, username) = try Self.signedInUser(context)
                let input = try await JSONOutput.decode(
                    APIKeyInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let (key, record) = try await identity.createAPIKey(
                    name: input.name, permissions: input.permissions, expiresAt: input.expiresAt,
                    tenant: principal.tenant, owner: username, by: principal)
                return try JSONOutput.response(APIKeyView(record, key: key), status: .created)
            }
        }
        router.delete(RouterPath(base + "/api-keys/:id")) { _, context in
            try await self.handle {
                let (principal, username) = try Self.signedInUser(context)
                let id = context.parameters.get("id") ?? ""
                guard try await identity.revokeAPIKey(id: id, tenant: principal.tenant, owner: username) else {
                    throw APIError.notFound("you have no API key \"\(id)\"")
                }
                return Response(status: .noContent)
            }
        }
        return router
    }

    /// The caller as a signed-in user (their own keys are a user's, not an API key's or the admin key's).
    static func signedInUser(_ context: ManagementContext) throws -> (Principal, String) {
        let principal = try context.principal()
        guard case .user(let username) = principal.kind else {
            throw APIError(
                .forbidden, .forbidden,
                "only a signed-in user has keys of their own; use …/tenants/{tenant}/api-keys for a tenant's keys")
        }
        return (principal, username)
    }

    /// Users, roles and API keys of a tenant (`/api/v1/tenants/{tenant}/…`) and of the platform
    /// (`/api/v1/users`, `/api/v1/roles`, `/api/v1/api-keys`, for platform principals).
    func identityAdministrationRoutes(_ identity: IdentityService) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        // The same operations on a tenant's identities and on the platform's; `owner` resolves which.
        let prefixes: [(path: String, owner: @Sendable (ManagementContext) async throws -> TenantID?)] = [
            ("/api/v1/tenants/:tenant", { context in try await self.tenantScope(context).tenant }),
            (
                "/api/v1",
                { context in
                    let principal = try context.principal()
                    guard principal.tenant == nil else {
                        throw APIError(
                            .forbidden, .forbidden,
                            "the platform's users, roles and keys are for platform principals; use /api/v1/tenants/\(principal.tenant?.rawValue ?? "")/…"
                        )
                    }
                    return nil
                }
            ),
        ]
        for (prefix, owner) in prefixes {
            addUserRoutes(router, prefix + "/users", owner, identity)
            addRoleRoutes(router, prefix + "/roles", owner, identity)
            addAPIKeyRoutes(router, prefix + "/api-keys", owner, identity)
        }
        addDepartmentRoutes(router, identity)
        router.get("/api/v1/audit", needs: .auditRead) { request, context in
            try await self.handle {
                let principal = try context.principal()
                var query = try Self.auditQuery(request)
                if let own = principal.tenant {
                    guard query.tenant == nil || query.tenant == own else {
                        throw APIError(.forbidden, .forbidden, "you may read the audit log of tenant \"\(own)\" only")
                    }
                    query.tenant = own
                }
                return try await self.auditResponse(identity, query, request)
            }
        }
        router.get("/api/v1/tenants/:tenant/audit", needs: .auditRead) { request, context in
            try await self.handle {
                var query = try Self.auditQuery(request)
                query.tenant = try await self.tenantScope(context).tenant
                return try await self.auditResponse(identity, query, request)
            }
        }
        return router
    }

    private func addUserRoutes(
        _ router: RouteCollection<ManagementContext>, _ path: String,
        _ owner: @escaping @Sendable (ManagementContext) async throws -> TenantID?, _ identity: IdentityService
    ) {
        router.get(RouterPath(path), needs: .userRead) { _, context in
            try await self.handle {
                let tenant = try await owner(context)
                let now = self.clock.now()
                return try JSONOutput.response(
                    try await identity.store.users(tenant: tenant).map { UserView($0, now: now) })
            }
        }
        router.post(RouterPath(path), needs: .userAdmin) { request, context in
            try await self.handle {
                let tenant = try await owner(context)
                let input = try await JSONOutput.decode(
                    NewUser.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let user = try await identity.createUser(input, tenant: tenant, by: try context.principal())
                return try JSONOutput.response(UserView(user, now: self.clock.now()), status: .created)
            }
        }
        router.get(RouterPath(path + "/:username"), needs: .userRead) { _, context in
            try await self.handle {
                let tenant = try await owner(context)
                let name = context.parameters.get("username") ?? ""
                guard let user = try await identity.store.user(name), user.tenant == tenant else {
                    throw APIError.notFound("user \"\(name)\" does not exist here")
                }
                return try JSONOutput.response(UserView(user, now: self.clock.now()))
            }
        }
        router.patch(RouterPath(path + "/:username"), needs: .userAdmin) { request, context in
            try await self.handle {
                let tenant = try await owner(context)
                let change = try await JSONOutput.decode(
                    UserChange.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let user = try await identity.updateUser(
                    context.parameters.get("username") ?? "", change, tenant: tenant, by: try context.principal())
                return try JSONOutput.response(UserView(user, now: self.clock.now()))
            }
        }
        router.delete(RouterPath(path + "/:username"), needs: .userAdmin) { _, context in
            try await self.handle {
                let tenant = try await owner(context)
                let name = context.parameters.get("username") ?? ""
                guard try await identity.deleteUser(name, tenant: tenant) else {
                    throw APIError.notFound("user \"\(name)\" does not exist here")
                }
                return Response(status: .noContent)
            }
        }
    }

    private func addDepartmentRoutes(_ router: RouteCollection<ManagementContext>, _ identity: IdentityService) {
        let path = "/api/v1/tenants/:tenant/departments"
        router.get(RouterPath(path), needs: .userRead) { _, context in
            try await self.handle {
                let tenant = try await self.tenantScope(context).tenant
                return try JSONOutput.response(try await identity.store.departments(tenant: tenant))
            }
        }
        router.post(RouterPath(path), needs: .userAdmin) { request, context in
            try await self.handle {
                let tenant = try await self.tenantScope(context).tenant
                let input = try await JSONOutput.decode(
                    DepartmentInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let department = try await identity.saveDepartment(
                    id: input.id, name: input.name, parent: input.parent, tenant: tenant)
                return try JSONOutput.response(department, status: .created)
            }
        }
        router.delete(RouterPath(path + "/:id"), needs: .userAdmin) { _, context in
            try await self.handle {
                let tenant = try await self.tenantScope(context).tenant
                let id = context.parameters.get("id") ?? ""
                guard try await identity.deleteDepartment(id, tenant: tenant) else {
                    throw APIError.notFound("department \"\(id)\" does not exist in tenant \"\(tenant)\"")
                }
                return Response(status: .noContent)
            }
        }
    }

    private func addRoleRoutes(
        _ router: RouteCollection<ManagementContext>, _ path: String,
        _ owner: @escaping @Sendable (ManagementContext) async throws -> TenantID?, _ identity: IdentityService
    ) {
        router.get(RouterPath(path), needs: .userRead) { _, context in
            try await self.handle {
                try JSONOutput.response(try await identity.roles(tenant: try await owner(context)))
            }
        }
        router.post(RouterPath(path), needs: .userAdmin) { request, context in
            try await self.handle {
                let tenant = try await owner(context)
                let role = try await JSONOutput.decode(
                    Role.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                try await identity.saveRole(role, tenant: tenant, by: try context.principal())
                return try JSONOutput.response(role, status: .created)
            }
        }
        router.delete(RouterPath(path + "/:id"), needs: .userAdmin) { _, context in
            try await self.handle {
                let tenant = try await owner(context)
                let id = context.parameters.get("id") ?? ""
                guard try await identity.deleteRole(id, tenant: tenant) else {
                    throw APIError.notFound(
                        "role \"\(id)\" is not a custom role here (built-in roles cannot be removed)")
                }
                return Response(status: .noContent)
            }
        }
    }

    private func addAPIKeyRoutes(
        _ router: RouteCollection<ManagementContext>, _ path: String,
        _ owner: @escaping @Sendable (ManagementContext) async throws -> TenantID?, _ identity: IdentityService
    ) {
        router.get(RouterPath(path), needs: .userRead) { _, context in
            try await self.handle {
                try JSONOutput.response(
                    try await identity.apiKeys(tenant: try await owner(context)).map { APIKeyView($0) })
            }
        }
        router.post(RouterPath(path), needs: .userAdmin) { request, context in
            try await self.handle {
                let tenant = try await owner(context)
                let input = try await JSONOutput.decode(
                    APIKeyInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                let (key, record) = try await identity.createAPIKey(
                    name: input.name, permissions: input.permissions, expiresAt: input.expiresAt, tenant: tenant,
                    owner: nil, by: try context.principal())
                return try JSONOutput.response(APIKeyView(record, key: key), status: .created)
            }
        }
        router.delete(RouterPath(path + "/:id"), needs: .userAdmin) { _, context in
            try await self.handle {
                let tenant = try await owner(context)
                let id = context.parameters.get("id") ?? ""
                guard try await identity.revokeAPIKey(id: id, tenant: tenant) else {
                    throw APIError.notFound("API key \"\(id)\" does not exist here")
                }
                return Response(status: .noContent)
            }
        }
    }

    /// The audit query of `?actor=&action=&result=success|failure&from=&to=&after=&limit=`.
    static func auditQuery(_ request: Request) throws -> AuditQuery {
        let p = request.uri.queryParameters
        func number(_ key: String) throws -> Int64? {
            guard let raw = p.get(key) else { return nil }
            guard let value = Int64(raw) else {
                throw APIError.badRequest("\(key) \"\(raw)\" is not a whole number (milliseconds since 1970, or an id)")
            }
            return value
        }
        var query = AuditQuery(
            tenant: p.get("tenant").map { TenantID($0) }, actor: p.get("actor"), actionPrefix: p.get("action"),
            from: try number("from"), to: try number("to"), after: try number("after"),
            limit: Int(try number("limit") ?? 1_000))
        switch p.get("result") {
        case nil: break
        case "success": query.succeeded = true
        case "failure": query.succeeded = false
        case let other?: throw APIError.badRequest("result \"\(other)\" is not valid; use success or failure")
        }
        guard (1...100_000).contains(query.limit) else { throw APIError.badRequest("limit must be 1 to 100000") }
        return query
    }

    /// The entries as JSON, or as CSV with `?format=csv`.
    func auditResponse(_ identity: IdentityService, _ query: AuditQuery, _ request: Request) async throws -> Response {
        guard let audit = identity.audit else {
            throw APIError.notFound("this server keeps no audit log; configure an audit store")
        }
        let events = try await audit.events(query)
        switch request.uri.queryParameters.get("format") {
        case nil, "json": return try JSONOutput.response(events)
        case "csv":
            var csv = "id,time,actor,tenant,action,target,status,client\r\n"
            for e in events {
                let fields = [
                    String(e.id), String(e.time), e.actor, e.tenant?.rawValue ?? "", e.action, e.target,
                    String(e.status),
                    e.client,
                ]
                csv += fields.map { CSV.field(.text($0)) }.joined(separator: ",") + "\r\n"
            }
            var response = JSONOutput.text(csv, contentType: "text/csv; charset=utf-8")
            response.headers[.contentDisposition] = "attachment; filename=\"audit.csv\""
            return response
        case let other?: throw APIError.badRequest("format \"\(other)\" is not valid; use json or csv")
        }
    }
}
