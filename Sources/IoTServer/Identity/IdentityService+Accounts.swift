public import IoTCore
public import IoTRules
import Logging

/// Sends the one-time links of accounts: activation of a user made without a password, and password reset.
public protocol AccountNotifier: Sendable {
    /// Sends `user` the link that sets their first password.
    func sendActivation(to user: UserAccount, link: String, expiresAt: Int64) async throws
    /// Sends `user` the link that sets a new password.
    func sendPasswordReset(to user: UserAccount, link: String, expiresAt: Int64) async throws
}

/// The default ``AccountNotifier``: the `account_registered` and `password_reset` templates of the user's
/// tenant, to their email address, through the tenant's notification outbox (retried, dead-lettered, listed
/// like every other notification).
public struct OutboxAccountNotifier: AccountNotifier {
    let router: NotificationRouter
    let channel: String
    let clock: any IoTClock

    /// Sends through `router` on `channel` (the name of an email channel of the configuration).
    public init(router: NotificationRouter, channel: String, clock: any IoTClock = SystemClock()) {
        self.router = router
        self.channel = channel
        self.clock = clock
    }

    public func sendActivation(to user: UserAccount, link: String, expiresAt: Int64) async throws {
        try await send("account_registered", to: user, values: ["login_url": link, "activation_url": link], expiresAt)
    }

    public func sendPasswordReset(to user: UserAccount, link: String, expiresAt: Int64) async throws {
        try await send("password_reset", to: user, values: ["reset_url": link], expiresAt)
    }

    private func send(_ template: String, to user: UserAccount, values: [String: String], _ expiresAt: Int64)
        async throws
    {
        guard let tenant = user.tenant, let email = user.email else {
            throw IoTError(
                .invalidArgument,
                "user \"\(user.username)\" has no tenant outbox or no email address to send a link to; give them a password instead"
            )
        }
        var all = values
        all["tenant"] = tenant.rawValue
        all["user_name"] = user.displayName
        all["user.name"] = user.displayName
        all["user.email"] = email
        all["expires_at"] = IdentityService.iso(expiresAt)
        all["timestamp"] = IdentityService.iso(clock.now())
        try await router.notify(
            templateID: template, values: all, targets: [RoutingTarget(channel: channel, recipients: [email])],
            tenant: tenant)
    }
}

/// What `POST …/users` takes.
public struct NewUser: Sendable, Codable {
    /// The sign-in name.
    public var username: String
    /// What it says on a screen; the username when missing.
    public var displayName: String?
    /// Where links go, and the address on email channels.
    public var email: String?
    /// The number on SMS and voice channels.
    public var phone: String?
    /// Addresses on other channels, by channel name.
    public var contacts: [String: String]?
    /// Role ids.
    public var roles: [String]
    /// The department id.
    public var department: String?
    /// Devices and products granted besides the department's.
    public var grants: DataGrants?
    /// The first password; without one, the user is pending until they use the activation link.
    public var password: String?

    /// Describes a user to make.
    public init(
        username: String, displayName: String? = nil, email: String? = nil, phone: String? = nil,
        contacts: [String: String]? = nil, roles: [String], department: String? = nil, grants: DataGrants? = nil,
        password: String? = nil
    ) {
        self.username = username
        self.displayName = displayName
        self.email = email
        self.phone = phone
        self.contacts = contacts
        self.roles = roles
        self.department = department
        self.grants = grants
        self.password = password
    }
}

/// What `PATCH …/users/{username}` takes: every field that is set is changed.
public struct UserChange: Sendable, Codable {
    /// A new display name.
    public var displayName: String?
    /// A new email address.
    public var email: String?
    /// A new phone number (`""` for none).
    public var phone: String?
    /// New addresses by channel name (`{}` for none).
    public var contacts: [String: String]?
    /// New role ids.
    public var roles: [String]?
    /// A new department id (`""` for none).
    public var department: String?
    /// New grants (`{}` for none).
    public var grants: DataGrants?
    /// `active` or `suspended` (suspending signs the user out everywhere).
    public var status: UserAccount.Status?
    /// `true` lifts a lockout.
    public var unlock: Bool?
}

extension IdentityService {
    /// Makes a user of `tenant` (`nil`: of the platform) on behalf of `by`.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a bad username, an unknown role, a password the
    ///   policy refuses, or a user without password and email; ``IoTCore/IoTError/Code/forbidden`` when the
    ///   roles grant what `by` may not do; ``IoTCore/IoTError/Code/conflict`` when the username is taken.
    public func createUser(_ input: NewUser, tenant: TenantID?, by: Principal) async throws -> UserAccount {
        try Self.validateUsername(input.username)
        try await checkRoles(input.roles, tenant: tenant, by: by)
        try await checkDepartment(input.department, tenant: tenant)
        if try await store.user(input.username) != nil {
            throw IoTError(
                .conflict, "username \"\(input.username)\" is taken; usernames are unique across the platform")
        }
        var user = UserAccount(
            username: input.username, tenant: tenant, displayName: input.displayName, email: input.email,
            roles: input.roles, department: input.department, grants: input.grants, status: .pending,
            createdAt: clock.now())
        user.phone = input.phone
        user.contacts = input.contacts
        if let password = input.password {
            try checkPolicy(password, username: user.username)
            user.passwordHash = await hash(password)
            user.passwordChangedAt = clock.now()
            user.status = .active
            try await store.saveUser(user)
        } else {
            guard let notifier, tenant != nil, input.email != nil else {
                throw IoTError(
                    .invalidArgument,
                    "give the user a password, or an email address for the activation link (tenant users, with notifications configured)"
                )
            }
            try await store.saveUser(user)
            try await sendLink(.activation, to: user, notifier: notifier)
        }
        return user
    }

    /// Changes a user on behalf of `by`.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound`` for an unknown user, as ``createUser(_:tenant:by:)`` for
    ///   roles.
    public func updateUser(_ username: String, _ change: UserChange, tenant: TenantID?, by: Principal) async throws
        -> UserAccount
    {
        guard var user = try await store.user(username), user.tenant == tenant else {
            throw IoTError(.notFound, "user \"\(username)\" does not exist here")
        }
        if let roles = change.roles {
            try await checkRoles(roles, tenant: tenant, by: by)
            user.roles = roles
        }
        if let name = change.displayName { user.displayName = name }
        if let email = change.email { user.email = email.isEmpty ? nil : email }
        if let phone = change.phone { user.phone = phone.isEmpty ? nil : phone }
        if let contacts = change.contacts { user.contacts = contacts.isEmpty ? nil : contacts }
        if let department = change.department {
            user.department = department.isEmpty ? nil : department
            try await checkDepartment(user.department, tenant: tenant)
        }
        if let grants = change.grants {
            user.grants = grants.devices.isEmpty && grants.products.isEmpty ? nil : grants
        }
        if let status = change.status {
            guard status != .pending else {
                throw IoTError(.invalidArgument, "status may be set to active or suspended")
            }
            guard status == .suspended || user.passwordHash != nil else {
                throw IoTError(.invalidArgument, "user \"\(username)\" has no password yet; they activate themselves")
            }
            user.status = status
            // Signed out everywhere; their API keys stay, refused while they are suspended.
            if status == .suspended { _ = try await store.deleteSecrets(username: username, kinds: Self.sessions) }
        }
        if change.unlock == true {
            user.lockedUntil = nil
            user.failedSignIns = 0
        }
        try await store.saveUser(user)
        forgetResolvedCredentials()
        return user
    }

    /// The secrets that a new password or a suspension ends: refresh tokens and one-time links (not API keys,
    /// which their owner revokes, and which never do more than their user may do now).
    static let sessions: Set<IdentitySecret.Kind> = [.refreshToken, .activation, .passwordReset]

    /// Deletes a user with their refresh tokens and API keys; returns whether they were there.
    public func deleteUser(_ username: String, tenant: TenantID?) async throws -> Bool {
        guard let user = try await store.user(username), user.tenant == tenant else { return false }
        let deleted = try await store.deleteUser(username)
        forgetResolvedCredentials()
        return deleted
    }

    /// Sets a pending user's first password with the token of their activation link.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unauthorized`` for a used, expired or unknown token,
    ///   ``IoTCore/IoTError/Code/invalidArgument`` for a password the policy refuses.
    public func activate(token: String, password: String, client: String) async throws {
        try await useLink(.activation, token: token, password: password, client: client)
    }

    /// Sends a password-reset link to `username`'s email, if there is such a user with an address; says
    /// nothing either way (the caller learns nothing about which usernames exist).
    public func requestPasswordReset(username: String, client: String) async {
        await record(actor: username, tenant: nil, action: "auth.reset-request", target: username, status: 202, client)
        guard let notifier, let user = try? await store.user(username), user.status != .suspended,
            user.email != nil, user.tenant != nil
        else { return }
        do {
            try await sendLink(.passwordReset, to: user, notifier: notifier)
        } catch {
            logger.warning(
                "a password-reset link could not be sent", metadata: ["user": "\(username)", "error": "\(error)"])
        }
    }

    /// Sets a new password with the token of a password-reset link, and signs the user out everywhere.
    ///
    /// - Throws: as ``activate(token:password:client:)``.
    public func resetPassword(token: String, password: String, client: String) async throws {
        try await useLink(.passwordReset, token: token, password: password, client: client)
    }

    /// Changes the signed-in user's own password; their other sessions are signed out.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unauthorized`` for a wrong current password.
    public func changePassword(_ principal: Principal, current: String, new: String) async throws {
        guard case .user(let username) = principal.kind, var user = try await store.user(username),
            let hash = user.passwordHash
        else {
            throw IoTError(.forbidden, "only a signed-in user changes their password (not an API key or the admin key)")
        }
        guard await verify(current, hash: hash) else {
            throw IoTError(.unauthorized, "the current password is not valid")
        }
        try checkPolicy(new, username: username)
        user.passwordHash = await self.hash(new)
        user.passwordChangedAt = clock.now()
        try await store.saveUser(user)
        _ = try await store.deleteSecrets(username: username, kinds: Self.sessions)
        forgetResolvedCredentials()
    }

    private func useLink(_ kind: IdentitySecret.Kind, token: String, password: String, client: String) async throws {
        let digest = Self.digest(token)
        let action = kind == .activation ? "auth.activate" : "auth.reset"
        guard let secret = try await store.secret(digest: digest), secret.kind == kind,
            !secret.isExpired(at: clock.now()), let username = secret.username,
            var user = try await store.user(username)
        else {
            await record(actor: "", tenant: nil, action: action, target: "", status: 401, client)
            throw IoTError(.unauthorized, "the link is not valid (used, expired or unknown); ask for a new one")
        }
        try checkPolicy(password, username: username)
        // This link, other links, every session.
        _ = try await store.deleteSecrets(username: username, kinds: Self.sessions)
        user.passwordHash = await hash(password)
        user.passwordChangedAt = clock.now()
        user.failedSignIns = 0
        user.lockedUntil = nil
        if user.status == .pending { user.status = .active }
        try await store.saveUser(user)
        forgetResolvedCredentials()
        await record(actor: username, tenant: user.tenant, action: action, target: username, status: 204, client)
    }

    private func sendLink(_ kind: IdentitySecret.Kind, to user: UserAccount, notifier: any AccountNotifier) async throws
    {
        let expiresAt = clock.now() + configuration.linkLifetime.inMilliseconds
        let (token, _) = try await issueSecret(
            prefix: "iotl", kind: kind, tenant: user.tenant, username: user.username, name: kind.rawValue,
            permissions: [], expiresAt: expiresAt)
        let base = configuration.linkBaseURL ?? "/console/"
        if kind == .activation {
            try await notifier.sendActivation(to: user, link: "\(base)#activate=\(token)", expiresAt: expiresAt)
        } else {
            try await notifier.sendPasswordReset(to: user, link: "\(base)#reset=\(token)", expiresAt: expiresAt)
        }
    }

    /// Checks a password against the policy: at least ``Configuration/passwordMinLength`` characters, at most
    /// 72 bytes, letters and something else, not the username.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` saying which rule it breaks.
    public func checkPolicy(_ password: String, username: String) throws(IoTError) {
        guard password.count >= configuration.passwordMinLength else {
            throw IoTError(
                .invalidArgument,
                "the password is too short: use at least \(configuration.passwordMinLength) characters")
        }
        guard password.utf8.count <= 72 else {
            throw IoTError(.invalidArgument, "the password is too long: use at most 72 bytes")
        }
        guard password.contains(where: \.isLetter), password.contains(where: { !$0.isLetter }) else {
            throw IoTError(.invalidArgument, "the password needs letters and at least one digit or other sign")
        }
        guard !password.lowercased().contains(username.lowercased()) else {
            throw IoTError(.invalidArgument, "the password must not contain the username")
        }
    }

    static func validateUsername(_ name: String) throws(IoTError) {
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || ".-_@".unicodeScalars.contains($0)
        }
        guard (3...64).contains(name.count), allowed else {
            throw IoTError(.invalidArgument, "username \"\(name)\" is not valid: use 3 to 64 of a-z A-Z 0-9 . _ @ -")
        }
    }

    /// Checks that every role exists for `tenant` and that together they grant nothing `by` may not do.
    func checkRoles(_ roles: [String], tenant: TenantID?, by: Principal) async throws {
        guard !roles.isEmpty else { throw IoTError(.invalidArgument, "give the user at least one role") }
        var granted: Set<Permission> = []
        let custom = Dictionary(
            try await store.roles(tenant: tenant).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for id in roles {
            if id == Role.platformAdmin.id, tenant != nil {
                throw IoTError(.invalidArgument, "platform-admin is a role of platform users only; use tenant-admin")
            }
            guard let role = Role.builtIn[id] ?? custom[id] else {
                throw IoTError(
                    .invalidArgument,
                    "role \"\(id)\" does not exist; use tenant-admin, operator, viewer or a role of GET …/roles")
            }
            granted.formUnion(role.permissions)
        }
        if tenant != nil { granted.subtract(Permission.platformOnly) }
        let beyond = granted.subtracting(by.permissions)
        guard beyond.isEmpty else {
            throw IoTError(
                .forbidden,
                "these roles grant what you may not do yourself (\(beyond.sorted().map(\.rawValue).joined(separator: ", ")))"
            )
        }
    }

    /// Checks that `department` exists in `tenant` (a platform user has none).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the department.
    func checkDepartment(_ department: String?, tenant: TenantID?) async throws {
        guard let department else { return }
        guard let tenant, try await store.departments(tenant: tenant).contains(where: { $0.id == department })
        else {
            throw IoTError(
                .invalidArgument,
                "department \"\(department)\" does not exist; add it with POST /api/v1/tenants/{tenant}/departments")
        }
    }

    // MARK: Departments

    /// Adds a department to `tenant`, or replaces the one with `id`; without an id, one is made from the name
    /// (`North Hall` → `north-hall`, `north-hall-2` when taken). Returns what was saved.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for neither an id nor a name, a bad id, an unknown
    ///   parent, or a parent that would make a cycle.
    @discardableResult
    public func saveDepartment(id: String?, name: String?, parent: String?, tenant: TenantID) async throws
        -> Department
    {
        let all = try await store.departments(tenant: tenant)
        guard let id = id ?? name.map({ Self.departmentID(from: $0, taken: Set(all.map(\.id))) }) else {
            throw IoTError(.invalidArgument, "give the department a \"name\" (its id is made from it) or an \"id\"")
        }
        let department = Department(id: id, name: name, parent: parent)
        try await saveDepartment(department, among: all, tenant: tenant)
        return department
    }

    /// Adds or replaces a department of `tenant`.
    ///
    /// - Throws: as ``saveDepartment(id:name:parent:tenant:)``.
    public func saveDepartment(_ department: Department, tenant: TenantID) async throws {
        try await saveDepartment(department, among: try await store.departments(tenant: tenant), tenant: tenant)
    }

    /// An id made of `name`'s letters and digits, lower-cased, other runs of characters as one `-`, made unique
    /// among `taken` with `-2`, `-3` …
    static func departmentID(from name: String, taken: Set<String>) -> String {
        var slug = ""
        for c in name.lowercased().unicodeScalars {
            if c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c)) {
                slug.unicodeScalars.append(c)
            } else if !slug.isEmpty && !slug.hasSuffix("-") {
                slug += "-"
            }
        }
        while slug.hasSuffix("-") { slug.removeLast() }
        if slug.isEmpty { slug = "department" }
        slug = String(slug.prefix(56))
        var id = slug
        var n = 2
        while taken.contains(id) {
            id = "\(slug)-\(n)"
            n += 1
        }
        return id
    }

    private func saveDepartment(_ department: Department, among all: [Department], tenant: TenantID) async throws {
        try validateIdentifier(department.id, "department id")
        if let parent = department.parent {
            guard all.contains(where: { $0.id == parent }) else {
                throw IoTError(.invalidArgument, "parent department \"\(parent)\" does not exist; add it first")
            }
            guard !Self.subtree(of: department.id, in: all).contains(parent) else {
                throw IoTError(
                    .invalidArgument, "department \"\(parent)\" is below \"\(department.id)\"; a tree has no cycles")
            }
        }
        try await store.saveDepartment(department, tenant: tenant)
        forgetResolvedCredentials()
    }

    /// Removes a department that has no sub-departments and no users.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/conflict`` naming what is still in it.
    public func deleteDepartment(_ id: String, tenant: TenantID) async throws -> Bool {
        let children = try await store.departments(tenant: tenant).filter { $0.parent == id }.map(\.id)
        let users = try await store.users(tenant: tenant).filter { $0.department == id }.map(\.username)
        guard children.isEmpty, users.isEmpty else {
            throw IoTError(
                .conflict,
                "department \"\(id)\" still holds \((children + users).joined(separator: ", ")); move them first")
        }
        let deleted = try await store.deleteDepartment(id, tenant: tenant)
        forgetResolvedCredentials()
        return deleted
    }

    // MARK: Roles

    /// The roles a tenant's users may hold: the built-in ones (but platform-admin) and the tenant's own.
    public func roles(tenant: TenantID?) async throws -> [Role] {
        let builtIn = [Role.platformAdmin, .tenantAdmin, .operator, .viewer].filter {
            tenant == nil || $0.id != Role.platformAdmin.id
        }
        return builtIn + (try await store.roles(tenant: tenant))
    }

    /// Adds or replaces a custom role of `tenant`.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a built-in id, a malformed permission or one only
    ///   the platform holds; ``IoTCore/IoTError/Code/forbidden`` for permissions `by` lacks.
    public func saveRole(_ role: Role, tenant: TenantID?, by: Principal) async throws {
        guard Role.builtIn[role.id] == nil else {
            throw IoTError(.invalidArgument, "role \"\(role.id)\" is built in; choose another id")
        }
        try validateIdentifier(role.id, "role id")
        if let bad = role.permissions.first(where: { !$0.isWellFormed }) {
            throw IoTError(.invalidArgument, "permission \"\(bad)\" is not of the form resource:action")
        }
        if tenant != nil, let platform = role.permissions.first(where: Permission.platformOnly.contains) {
            throw IoTError(
                .invalidArgument, "permission \"\(platform)\" is the platform's only; a tenant role cannot grant it")
        }
        let beyond = role.permissions.subtracting(by.permissions)
        guard beyond.isEmpty else {
            throw IoTError(
                .forbidden,
                "the role grants what you may not do yourself (\(beyond.sorted().map(\.rawValue).joined(separator: ", ")))"
            )
        }
        try await store.saveRole(role, tenant: tenant)
        forgetResolvedCredentials()
    }

    /// Removes a custom role that no user holds.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/conflict`` naming the users who hold it.
    public func deleteRole(_ id: String, tenant: TenantID?) async throws -> Bool {
        let holders = try await store.users(tenant: tenant).filter { $0.roles.contains(id) }.map(\.username)
        guard holders.isEmpty else {
            throw IoTError(
                .conflict, "role \"\(id)\" is held by \(holders.joined(separator: ", ")); change their roles first")
        }
        let deleted = try await store.deleteRole(id, tenant: tenant)
        forgetResolvedCredentials()
        return deleted
    }

    // MARK: API keys

    /// Makes an API key for `tenant` (`nil`: the platform), of `owner` (a user) or of the tenant itself.
    ///
    /// - Returns: the key (shown this once) and its record.
    /// - Throws: ``IoTCore/IoTError/Code/forbidden`` when the permissions exceed what `by` may do;
    ///   ``IoTCore/IoTError/Code/invalidArgument`` for an empty or malformed permission list or an expiry in the
    ///   past.
    public func createAPIKey(
        name: String, permissions: Set<Permission>, expiresAt: Int64?, tenant: TenantID?, owner: String?, by: Principal
    ) async throws -> (key: String, record: IdentitySecret) {
        guard !permissions.isEmpty else {
            throw IoTError(.invalidArgument, "give the key at least one permission (\"permissions\": [\"data:read\"])")
        }
        if let bad = permissions.first(where: { !$0.isWellFormed }) {
            throw IoTError(.invalidArgument, "permission \"\(bad)\" is not of the form resource:action")
        }
        let beyond = permissions.subtracting(by.permissions)
        guard beyond.isEmpty else {
            throw IoTError(
                .forbidden,
                "a key cannot do more than its maker; you lack \(beyond.sorted().map(\.rawValue).joined(separator: ", "))"
            )
        }
        if let expiresAt, expiresAt <= clock.now() {
            throw IoTError(.invalidArgument, "expiresAt is in the past; give a later time in milliseconds since 1970")
        }
        return try await issueSecret(
            prefix: "iotk", kind: .apiKey, tenant: tenant, username: owner, name: name, permissions: permissions,
            expiresAt: expiresAt)
    }

    /// The API keys of `tenant` (`nil`: the platform), or only `owner`'s.
    public func apiKeys(tenant: TenantID?, owner: String? = nil) async throws -> [IdentitySecret] {
        try await store.secrets(kind: .apiKey, tenant: tenant).filter { owner == nil || $0.username == owner }
    }

    /// Revokes the API key with public id `id`; returns whether it was there.
    public func revokeAPIKey(id: String, tenant: TenantID?, owner: String? = nil) async throws -> Bool {
        guard let key = try await apiKeys(tenant: tenant, owner: owner).first(where: { $0.id == id }) else {
            return false
        }
        let deleted = try await store.deleteSecret(digest: key.digest)
        forgetResolvedCredentials()
        return deleted
    }
}
