import Crypto
import Dispatch
import Foundation
import HummingbirdBcrypt
public import IoTCore
import JWTKit
public import Logging
public import ServiceLifecycle
import Synchronization

/// Users, sign-in, access and refresh tokens, API keys and the audit log of the management API.
///
/// - Sign-in (`POST /api/v1/auth/login`) checks a bcrypt hash, locks the account for
///   ``Configuration/lockout`` after ``Configuration/maxFailedSignIns`` failures in a row, and returns a
///   short-lived access token (a JWT signed by ``SigningKeys``) and a refresh token (used once, kept as a
///   digest).
/// - A user made without a password, and a user who forgot theirs, get a one-time link through the tenant's
///   notification outbox (``AccountNotifier``): the `account_registered` and `password_reset` templates.
/// - API keys (`iotk_…`) carry a subset of their maker's permissions and an optional expiry; only their
///   digest is kept.
/// - Every sign-in attempt is written to the audit log; run the service (it is a `Service`) to prune the log
///   after ``Configuration/auditRetention`` and to drop expired secrets.
///
/// ```swift
/// let identity = IdentityService(
///     configuration: .init(), keys: try await SigningKeys(file: "/var/lib/iotd/identity-keys.json"),
///     store: SQLiteIdentityStore(storage: storage), audit: SQLiteAuditStore(storage: storage),
///     notifier: OutboxAccountNotifier(router: notifications, channel: "email"))
/// let api = ManagementServer(configuration: …, …, identity: identity)
/// ```
public final class IdentityService: Service {
    /// Token lifetimes, the password policy, the lockout and the audit log's retention.
    public struct Configuration: Sendable {
        /// How long an access token is valid. Default 15 minutes.
        public var accessTokenLifetime: Duration
        /// How long a refresh token is valid. Default 30 days.
        public var refreshTokenLifetime: Duration
        /// How long an activation or password-reset link is valid. Default 24 hours.
        public var linkLifetime: Duration
        /// Where the links point: the page that takes the token, to which `#activate=<token>` or
        /// `#reset=<token>` is appended. Default `nil`: the platform sets it to its console.
        public var linkBaseURL: String?
        /// The shortest password accepted. Default 12 (bcrypt reads at most 72 bytes, the longest accepted).
        public var passwordMinLength: Int
        /// The bcrypt cost of new password hashes (4 to 31; each step doubles the time). Default 12.
        public var bcryptCost: Int
        /// Failed sign-ins in a row that lock an account. Default 5.
        public var maxFailedSignIns: Int
        /// How long a locked account stays locked. Default 15 minutes.
        public var lockout: Duration
        /// How long audit entries are kept. Default 90 days.
        public var auditRetention: Duration

        /// Creates a configuration; every argument has the default documented on its property.
        public init(
            accessTokenLifetime: Duration = .seconds(15 * 60), refreshTokenLifetime: Duration = .seconds(30 * 86_400),
            linkLifetime: Duration = .seconds(86_400), linkBaseURL: String? = nil, passwordMinLength: Int = 12,
            bcryptCost: Int = 12, maxFailedSignIns: Int = 5, lockout: Duration = .seconds(15 * 60),
            auditRetention: Duration = .seconds(90 * 86_400)
        ) {
            self.accessTokenLifetime = accessTokenLifetime
            self.refreshTokenLifetime = refreshTokenLifetime
            self.linkLifetime = linkLifetime
            self.linkBaseURL = linkBaseURL
            self.passwordMinLength = passwordMinLength
            self.bcryptCost = bcryptCost
            self.maxFailedSignIns = maxFailedSignIns
            self.lockout = lockout
            self.auditRetention = auditRetention
        }

        /// Checks every setting's range.
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the key as `iotd.yaml` writes it.
        public func validate() throws(IoTError) {
            try IoTLimits.checkDuration(accessTokenLifetime, "accessTokenSeconds", minimum: .seconds(10))
            try IoTLimits.checkDuration(refreshTokenLifetime, "refreshTokenSeconds", minimum: .seconds(60))
            try IoTLimits.checkDuration(linkLifetime, "linkSeconds", minimum: .seconds(60))
            try IoTLimits.checkDuration(lockout, "lockoutSeconds", minimum: .seconds(1))
            guard auditRetention >= .seconds(86_400) else {
                throw IoTError(.invalidArgument, "auditRetentionDays: keep the audit log at least 1 day")
            }
            try IoTLimits.checkSetting(passwordMinLength, "passwordMinLength", in: 8...72)
            try IoTLimits.checkSetting(bcryptCost, "bcryptCost", in: 4...31)
            try IoTLimits.checkSetting(maxFailedSignIns, "maxFailedSignIns", in: 1...1_000)
        }
    }

    /// What `POST /api/v1/auth/login` and `…/refresh` answer.
    public struct Tokens: Sendable, Codable {
        /// The access token (a JWT), sent as `Authorization: Bearer <token>`.
        public var accessToken: String
        /// Always `Bearer`.
        public var tokenType = "Bearer"
        /// Seconds until the access token expires.
        public var expiresIn: Int64
        /// The refresh token, exchanged once for new tokens at `POST /api/v1/auth/refresh`.
        public var refreshToken: String
        /// Seconds until the refresh token expires.
        public var refreshExpiresIn: Int64
    }

    /// The configuration in force.
    public let configuration: Configuration
    /// Users, roles, departments and secret digests.
    public let store: any IdentityStore
    /// The audit log; `nil` keeps none.
    public let audit: (any AuditStore)?
    let keys: SigningKeys
    let notifier: (any AccountNotifier)?
    let clock: any IoTClock
    let logger: Logger
    /// A hash to check against when the username is unknown, so that the time taken does not tell; made on the
    /// first such sign-in (a bcrypt hash takes a quarter of a second at cost 12).
    let decoy = Mutex<String?>(nil)
    /// Where the devices of a data scope are listed; `nil` gives users with a department or grants no device.
    let registry: (any RegistryStore)?
    /// Principals, data scopes and department trees resolved in the last second (see ``IdentityCache``).
    let cache = Mutex(IdentityCache())

    /// Creates the service.
    ///
    /// - Parameters:
    ///   - keys: the keys that sign access tokens.
    ///   - store: users, roles, departments and secret digests.
    ///   - audit: where sign-ins and changes are logged; `nil` for no audit log.
    ///   - notifier: sends activation and password-reset links; `nil` refuses users without a password and
    ///     answers reset requests without sending anything.
    ///   - registry: lists the devices of a user's data scope (their department's subtree and grants).
    public init(
        configuration: Configuration = .init(), keys: SigningKeys, store: any IdentityStore,
        audit: (any AuditStore)?, notifier: (any AccountNotifier)?, registry: (any RegistryStore)? = nil,
        clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.identity")
    ) {
        self.configuration = configuration
        self.registry = registry
        self.keys = keys
        self.store = store
        self.audit = audit
        self.notifier = notifier
        self.clock = clock
        self.logger = logger
    }

    /// Prunes the audit log once an hour until graceful shutdown.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await pruneAuditLog()
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(3_600)) }
            } catch {
                return
            }
        }
    }

    /// Removes the audit entries older than ``Configuration/auditRetention`` (``run()`` does it every hour);
    /// returns how many, and logs a failure rather than throwing it.
    @discardableResult
    public func pruneAuditLog() async -> Int {
        guard let audit else { return 0 }
        do {
            let removed = try await audit.prune(before: clock.now() - configuration.auditRetention.inMilliseconds)
            if removed > 0 { logger.info("audit log pruned", metadata: ["entries": "\(removed)"]) }
            return removed
        } catch {
            logger.warning("the audit log could not be pruned", metadata: ["error": "\(error)"])
            return 0
        }
    }

    // MARK: Sign-in

    /// Signs a user in; with `tenant`, only a user of that tenant.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unauthorized`` for an unknown user or a wrong password (the same
    ///   message for both), ``IoTCore/IoTError/Code/rateLimited`` while the account is locked,
    ///   ``IoTCore/IoTError/Code/forbidden`` for a pending or suspended account (only with the right password).
    public func login(username: String, password: String, tenant: TenantID? = nil, client: String) async throws
        -> Tokens
    {
        let now = clock.now()
        // A tenant named by the client must be the user's: another tenant's user reads as an unknown one.
        guard var user = try await store.user(username), tenant == nil || user.tenant == tenant else {
            let decoyHash: String
            if let made = decoy.withLock({ $0 }) {
                decoyHash = made
            } else {
                decoyHash = await hash("decoy-\(UInt64.random(in: 0...UInt64.max))")
                decoy.withLock { $0 = decoyHash }
            }
            _ = await verify(password, hash: decoyHash)
            await record(actor: username, tenant: nil, action: "auth.login", target: username, status: 401, client)
            throw IoTError(.unauthorized, "the username or password is not valid")
        }
        if let until = user.lockedUntil, until > now {
            await record(
                actor: username, tenant: user.tenant, action: "auth.login", target: username, status: 429, client)
            throw IoTError(
                .rateLimited,
                "the account is locked after \(configuration.maxFailedSignIns) failed sign-ins until \(Self.iso(until)); try again then, or ask an administrator to unlock it"
            )
        }
        guard let hash = user.passwordHash, await verify(password, hash: hash) else {
            user.failedSignIns += 1
            if user.failedSignIns >= configuration.maxFailedSignIns {
                user.lockedUntil = now + configuration.lockout.inMilliseconds
                user.failedSignIns = 0
                logger.warning("account locked after failed sign-ins", metadata: ["user": "\(username)"])
            }
            try await store.saveUser(user)
            await record(
                actor: username, tenant: user.tenant, action: "auth.login", target: username, status: 401, client)
            throw IoTError(.unauthorized, "the username or password is not valid")
        }
        guard user.status == .active else {
            await record(
                actor: username, tenant: user.tenant, action: "auth.login", target: username, status: 403, client)
            throw IoTError(
                .forbidden,
                user.status == .pending
                    ? "the account is not activated yet; use the activation link that was sent to it"
                    : "the account is suspended; ask an administrator of your tenant")
        }
        do {
            try await checkTenantActive(user.tenant)
        } catch {
            await record(
                actor: username, tenant: user.tenant, action: "auth.login", target: username, status: 403, client)
            throw error
        }
        if user.failedSignIns != 0 || user.lockedUntil != nil {
            user.failedSignIns = 0
            user.lockedUntil = nil
            try await store.saveUser(user)
        }
        await record(actor: username, tenant: user.tenant, action: "auth.login", target: username, status: 200, client)
        return try await issueTokens(for: user)
    }

    /// Exchanges a refresh token for new tokens; the old refresh token stops working.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unauthorized`` for an unknown, used or expired token, or a user who
    ///   may no longer sign in.
    public func refresh(_ refreshToken: String, client: String) async throws -> Tokens {
        let digest = Self.digest(refreshToken)
        guard let secret = try await store.secret(digest: digest), secret.kind == .refreshToken,
            let username = secret.username
        else {
            throw IoTError(.unauthorized, "the refresh token is not valid (used, revoked or unknown); sign in again")
        }
        _ = try await store.deleteSecret(digest: digest)
        guard !secret.isExpired(at: clock.now()), let user = try await store.user(username), user.status == .active
        else {
            throw IoTError(.unauthorized, "the refresh token has expired or the account may not sign in; sign in again")
        }
        await record(
            actor: username, tenant: user.tenant, action: "auth.refresh", target: username, status: 200, client)
        return try await issueTokens(for: user)
    }

    /// Revokes a refresh token (signing out); an unknown token is ignored.
    public func logout(_ refreshToken: String, client: String) async throws {
        let digest = Self.digest(refreshToken)
        guard let secret = try await store.secret(digest: digest), secret.kind == .refreshToken else { return }
        _ = try await store.deleteSecret(digest: digest)
        await record(
            actor: secret.username ?? "", tenant: secret.tenant, action: "auth.logout", target: secret.username ?? "",
            status: 204, client)
    }

    struct AccessClaims: JWTPayload {
        var sub: SubjectClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        var iss: IssuerClaim
        var tid: String?

        /// Checks the issuer; the expiry is checked against the service's clock (``IdentityService/authenticate(_:)``).
        func verify(using algorithm: some JWTAlgorithm) async throws {
            guard iss.value == IdentityService.issuer else {
                throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "issuer")
            }
        }
    }

    static let issuer = "iotd"

    func issueTokens(for user: UserAccount) async throws -> Tokens {
        let now = clock.now()
        let access = configuration.accessTokenLifetime.inMilliseconds
        let claims = AccessClaims(
            sub: SubjectClaim(value: user.username),
            exp: ExpirationClaim(value: Date(timeIntervalSince1970: Double(now + access) / 1_000)),
            iat: IssuedAtClaim(value: Date(timeIntervalSince1970: Double(now) / 1_000)),
            iss: IssuerClaim(value: Self.issuer), tid: user.tenant?.rawValue)
        let token = try await keys.sign(claims)
        let refresh = configuration.refreshTokenLifetime.inMilliseconds
        let (refreshToken, _) = try await issueSecret(
            prefix: "iotr", kind: .refreshToken, tenant: user.tenant, username: user.username, name: "sign-in",
            permissions: [], expiresAt: now + refresh)
        return Tokens(
            accessToken: token, expiresIn: access / 1_000, refreshToken: refreshToken, refreshExpiresIn: refresh / 1_000
        )
    }

    /// Makes a random secret `<prefix>_<id>_<random>`, stores its digest and returns it with its record.
    func issueSecret(
        prefix: String, kind: IdentitySecret.Kind, tenant: TenantID?, username: String?, name: String,
        permissions: Set<Permission>, expiresAt: Int64?
    ) async throws -> (String, IdentitySecret) {
        let id = Self.randomText(bytes: 6)
        let secret = "\(prefix)_\(id)_\(Self.randomText(bytes: 32))"
        let record = IdentitySecret(
            digest: Self.digest(secret), kind: kind, id: id, tenant: tenant, username: username, name: name,
            permissions: permissions, createdAt: clock.now(), expiresAt: expiresAt)
        try await store.saveSecret(record)
        return (secret, record)
    }

    // MARK: Authentication

    /// The principal of a bearer credential: an API key (`iotk_…`) or an access token; `nil` when it is
    /// neither.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unauthorized`` saying why a credential of either kind is refused
    ///   (expired, revoked, its user suspended or gone).
    public func authenticate(_ credential: String) async throws -> Principal? {
        if let principal = cachedPrincipal(credential) { return principal }
        // What is resolved from here on is remembered only if nothing changed meanwhile.
        let generation = cacheGeneration
        if credential.hasPrefix("iotk_") { return try await authenticateAPIKey(credential, generation) }
        guard credential.split(separator: ".").count == 3 else { return nil }
        let claims: AccessClaims
        do {
            claims = try await keys.verify(credential, as: AccessClaims.self)
        } catch {
            throw IoTError(
                .unauthorized, "the access token is not valid or has expired; sign in again or use your refresh token")
        }
        guard claims.exp.value.timeIntervalSince1970 * 1_000 > Double(clock.now()) else {
            throw IoTError(.unauthorized, "the access token has expired; use your refresh token or sign in again")
        }
        guard let user = try await store.user(claims.sub.value), user.tenant?.rawValue == claims.tid else {
            throw IoTError(.unauthorized, "the access token's user no longer exists; sign in again")
        }
        guard user.status == .active else {
            throw IoTError(.unauthorized, "the account is \(user.status.rawValue); ask an administrator")
        }
        try await checkTenantActive(user.tenant)
        let scope = try await dataScope(of: user, generation)
        let principal = Principal(
            kind: .user(user.username), tenant: user.tenant, permissions: try await permissions(of: user),
            devices: scope?.devices, departments: scope?.departments, department: user.department)
        remember(
            principal, for: credential, expiresAt: Int64(claims.exp.value.timeIntervalSince1970 * 1_000), generation)
        return principal
    }

    private func authenticateAPIKey(_ key: String, _ generation: Int) async throws -> Principal {
        guard let secret = try await store.secret(digest: Self.digest(key)), secret.kind == .apiKey else {
            throw IoTError(.unauthorized, "the API key is not valid (revoked or unknown)")
        }
        guard !secret.isExpired(at: clock.now()) else {
            throw IoTError(
                .unauthorized,
                "the API key \"\(secret.id)\" expired at \(Self.iso(secret.expiresAt ?? 0)); make a new one")
        }
        try await checkTenantActive(secret.tenant)
        var permissions = secret.permissions
        var scope: DataScope? = nil
        var department: String? = nil
        if let owner = secret.username {
            guard let user = try await store.user(owner), user.status == .active else {
                throw IoTError(.unauthorized, "the API key's user \"\(owner)\" may not sign in any more")
            }
            // A user's key never does more than its user may do now.
            permissions.formIntersection(try await self.permissions(of: user))
            scope = try await dataScope(of: user, generation)
            department = user.department
        } else if secret.tenant != nil {
            permissions.subtract(Permission.platformOnly)
        }
        let principal = Principal(
            kind: .apiKey(id: secret.id, owner: secret.username), tenant: secret.tenant, permissions: permissions,
            devices: scope?.devices, departments: scope?.departments, department: department)
        remember(principal, for: key, expiresAt: secret.expiresAt, generation)
        return principal
    }

    /// Refuses the users and keys of a suspended tenant.
    func checkTenantActive(_ tenant: TenantID?) async throws {
        guard let tenant, let registry, try await registry.tenant(tenant)?.status == .suspended else { return }
        throw IoTError(
            .forbidden, "tenant \"\(tenant)\" is suspended; ask the platform's administrators to resume it")
    }

    /// What `user` may do: the union of their roles' permissions (a tenant user never holds the platform's).
    public func permissions(of user: UserAccount) async throws -> Set<Permission> {
        var result: Set<Permission> = []
        var custom: [String: Role]? = nil
        for id in user.roles {
            if let role = Role.builtIn[id] {
                result.formUnion(role.permissions)
                continue
            }
            if custom == nil {
                custom = Dictionary(
                    try await store.roles(tenant: user.tenant).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            }
            if let role = custom?[id] { result.formUnion(role.permissions) }
        }
        if user.tenant != nil { result.subtract(Permission.platformOnly) }
        return result
    }

    // MARK: Support

    /// Writes an audit entry; a failing audit store is logged, not thrown.
    func record(actor: String, tenant: TenantID?, action: String, target: String, status: Int, _ client: String) async {
        guard let audit else { return }
        do {
            try await audit.append(
                AuditEvent(
                    time: clock.now(), actor: actor, tenant: tenant, action: action, target: target, status: status,
                    client: client))
        } catch {
            logger.error("an audit entry could not be written", metadata: ["error": "\(error)", "action": "\(action)"])
        }
    }

    /// Hashes a password with bcrypt on a thread of its own (it takes a quarter of a second at cost 12).
    func hash(_ password: String) async -> String {
        let cost = UInt8(configuration.bcryptCost)
        return await offPool { Bcrypt.hash(password, cost: cost) }
    }

    /// Checks a password against a bcrypt hash on a thread of its own.
    func verify(_ password: String, hash: String) async -> Bool {
        await offPool { Bcrypt.verify(password, hash: hash) }
    }

    private func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: body()) }
        }
    }

    static func digest(_ secret: String) -> [UInt8] { Array(SHA256.hash(data: Array(secret.utf8))) }

    static func randomText(bytes: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        return SigningKeys.base64URL(Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &rng) }))
    }

    static func iso(_ millis: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(millis) / 1_000))
    }
}

extension IdentityService.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey {
        case accessTokenSeconds, refreshTokenSeconds, linkSeconds, linkBaseURL, passwordMinLength, bcryptCost
        case maxFailedSignIns, lockoutSeconds, auditRetentionDays
    }

    /// Reads `identity:` of iotd.yaml (times in whole seconds, the audit retention in days); a missing key keeps
    /// its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            accessTokenLifetime: try c.decodeSeconds(.accessTokenSeconds, or: d.accessTokenLifetime),
            refreshTokenLifetime: try c.decodeSeconds(.refreshTokenSeconds, or: d.refreshTokenLifetime),
            linkLifetime: try c.decodeSeconds(.linkSeconds, or: d.linkLifetime),
            linkBaseURL: try c.decodeIfPresent(String.self, forKey: .linkBaseURL),
            passwordMinLength: try c.decode(.passwordMinLength, or: d.passwordMinLength),
            bcryptCost: try c.decode(.bcryptCost, or: d.bcryptCost),
            maxFailedSignIns: try c.decode(.maxFailedSignIns, or: d.maxFailedSignIns),
            lockout: try c.decodeSeconds(.lockoutSeconds, or: d.lockout),
            auditRetention: .seconds(
                86_400 * (try c.decodeIfPresent(Int64.self, forKey: .auditRetentionDays) ?? d.auditRetentionDays)))
    }

    /// ``auditRetention`` in whole days.
    var auditRetentionDays: Int64 { auditRetention.inMilliseconds / 86_400_000 }
}
