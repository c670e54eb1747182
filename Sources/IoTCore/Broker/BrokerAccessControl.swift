public import Logging

/// Answers a broker's questions about devices: may this client connect, may it publish or subscribe
/// to this topic. The decisions behind the EMQX HTTP authenticator and authorizer endpoints
/// (`IoTServer`'s `/broker/v1/emqx/…`), usable with any broker that asks over a hook.
///
/// Authentication: the username names the device (``BrokerAccountPolicy/usernameTemplate``); the
/// password is the device's username/password credential or one of its access tokens, checked by the
/// ``DeviceAuthenticator``. The credential must belong to the device the username names, the device
/// must still be in the registry, and its tenant must be served by the policy.
///
/// Authorization: the device the username names may publish and subscribe as the policy says, while it
/// exists and (when a ``TokenIssuer`` or a credential check is given) still has a credential, so a
/// device whose credentials were revoked or that was deleted is refused at once, also on a connection it
/// opened before.
///
/// ```swift
/// let access = BrokerAccessControl(
///     policy: BrokerAccountPolicy(), authenticator: tokens, registry: registry, tokens: tokens)
/// let decision = try await access.authenticate(username: "meter-1", password: token, clientID: "meter-1")
/// decision.result   // .allow
/// ```
///
/// Usernames that the policy does not describe (a broker's own admin or bridge accounts) and those in
/// ``Configuration/ignoredUsernames`` get ``Result/ignore``, so that the broker's next authenticator
/// decides about them.
public final class BrokerAccessControl: Sendable {
    /// Which usernames are left to the broker.
    public struct Configuration: Sendable {
        /// Usernames answered with ``Result/ignore`` (the broker's own accounts). Default none.
        public var ignoredUsernames: Set<String>
        /// Username prefixes answered with ``Result/ignore``. Default none.
        public var ignoredUsernamePrefixes: [String]

        /// Creates a configuration; every argument has the default documented on its property.
        public init(ignoredUsernames: Set<String> = [], ignoredUsernamePrefixes: [String] = []) {
            self.ignoredUsernames = ignoredUsernames
            self.ignoredUsernamePrefixes = ignoredUsernamePrefixes
        }
    }

    /// What the broker should do.
    public enum Result: String, Sendable, Hashable {
        /// Let the client in, or let it publish or subscribe.
        case allow
        /// Refuse.
        case deny
        /// Not a device of this platform: the broker's next authenticator or authorizer decides.
        case ignore
    }

    /// A decision and why.
    public struct Decision: Sendable, Hashable {
        /// Allow, deny or ignore.
        public var result: Result
        /// Why, for logs (never sent to the device).
        public var reason: String
        /// On an allowed connection: the device's topic rules, for brokers that take them with the answer.
        public var rules: [BrokerAccountPolicy.TopicRule]

        /// Creates a decision.
        public init(_ result: Result, _ reason: String, rules: [BrokerAccountPolicy.TopicRule] = []) {
            self.result = result
            self.reason = reason
            self.rules = rules
        }
    }

    /// The naming and topic policy.
    public let policy: BrokerAccountPolicy
    /// The configuration in force.
    public let configuration: Configuration
    let authenticator: any DeviceAuthenticator
    let registry: any RegistryStore
    let hasCredentials: (@Sendable (DeviceIdentity) async throws -> Bool)?
    let logger: Logger

    /// Creates the access control.
    ///
    /// - Parameters:
    ///   - tokens: when given, a device needs at least one unrevoked token to publish or subscribe;
    ///     leave it `nil` when devices use other credentials (see
    ///     ``init(policy:configuration:authenticator:registry:hasCredentials:logger:)``).
    public convenience init(
        policy: BrokerAccountPolicy = .init(),
        configuration: Configuration = .init(),
        authenticator: any DeviceAuthenticator,
        registry: any RegistryStore,
        tokens: (any TokenIssuer)?,
        logger: Logger = Logger(label: "iot.broker-access")
    ) {
        var check: (@Sendable (DeviceIdentity) async throws -> Bool)?
        if let tokens {
            check = { device in try await !tokens.tokens(of: device).isEmpty }
        }
        self.init(
            policy: policy, configuration: configuration, authenticator: authenticator, registry: registry,
            hasCredentials: check, logger: logger)
    }

    /// Creates the access control with a check of whether a device still holds any credential (token,
    /// password, …); the authorizer refuses a device for which it returns `false`, so revocation takes
    /// effect on connections opened before it. `nil` checks only that the device exists.
    public init(
        policy: BrokerAccountPolicy = .init(),
        configuration: Configuration = .init(),
        authenticator: any DeviceAuthenticator,
        registry: any RegistryStore,
        hasCredentials: (@Sendable (DeviceIdentity) async throws -> Bool)?,
        logger: Logger = Logger(label: "iot.broker-access")
    ) {
        self.policy = policy
        self.configuration = configuration
        self.authenticator = authenticator
        self.registry = registry
        self.hasCredentials = hasCredentials
        self.logger = logger
    }

    /// Decides about a connection.
    ///
    /// - Throws: ``IoTError`` only when the authenticator or the registry failed (not for bad
    ///   credentials, which are ``Result/deny``); answer the broker with a server error then.
    public func authenticate(username: String?, password: String?, clientID: String?, peerHost: String? = nil)
        async throws(IoTError) -> Decision
    {
        guard let username, !username.isEmpty else { return Decision(.ignore, "no username: not a device account") }
        if let ignored = ignoredReason(username) { return Decision(.ignore, ignored) }
        guard let named = policy.device(forUsername: username) else {
            return Decision(
                .ignore, "username \"\(username)\" does not fit the device template \(policy.usernameTemplate)")
        }
        guard let password, !password.isEmpty else { return Decision(.deny, "no password") }

        var identity: DeviceIdentity?
        // The token first (a digest lookup); then the password (PBKDF2), whose failures count against the
        // broker's peerhost and the username in the authenticator's attempt limits.
        let source = AuthenticationSource(transport: "emqx", address: peerHost ?? "")
        for credential in [DeviceCredential.token(password), .usernamePassword(username: username, password: password)]
        {
            do {
                let found: DeviceIdentity
                if case .token = credential {
                    found = try await authenticator.authenticate(credential)
                } else {
                    found = try await authenticator.authenticate(credential, source: source)
                }
                if policy.username(for: found) == username {
                    identity = found
                    break
                }
                return Decision(.deny, "the credential belongs to device \(found), not to \(username)")
            } catch  where error.code == .unauthorized {
                continue
            } catch  where error.code == .rateLimited {
                return Decision(.deny, error.message)
            }
        }
        guard let identity else { return Decision(.deny, "the password is not a valid credential of \(username)") }
        if let tenant = named.tenant, tenant != identity.tenant {
            return Decision(.deny, "the credential belongs to another tenant")
        }
        if let refusal = try await refusal(identity, clientID: clientID, checkCredentials: false) {
            return Decision(.deny, refusal)
        }
        return Decision(.allow, "device \(identity)", rules: policy.rules(for: identity))
    }

    /// Decides about a publish to `topic` or a subscription to the filter `topic`.
    ///
    /// - Throws: ``IoTError`` only when the registry or token issuer failed.
    public func authorize(
        username: String?, clientID: String?, action: BrokerAccountPolicy.Action, topic: String
    ) async throws(IoTError) -> Decision {
        guard let username, !username.isEmpty else { return Decision(.ignore, "no username: not a device account") }
        if let ignored = ignoredReason(username) { return Decision(.ignore, ignored) }
        guard let named = policy.device(forUsername: username) else {
            return Decision(
                .ignore, "username \"\(username)\" does not fit the device template \(policy.usernameTemplate)")
        }
        let identity: DeviceIdentity
        switch try await resolve(named) {
        case .found(let found): identity = found
        case .refused(let reason): return Decision(.deny, reason)
        }
        if let refusal = try await refusal(identity, clientID: clientID, checkCredentials: true) {
            return Decision(.deny, refusal)
        }
        guard policy.permits(identity, action, topic: topic) else {
            return Decision(.deny, "device \(identity) may not \(action.rawValue) \"\(topic)\"")
        }
        return Decision(.allow, "device \(identity) may \(action.rawValue) \"\(topic)\"")
    }

    // MARK: Steps

    private func ignoredReason(_ username: String) -> String? {
        if configuration.ignoredUsernames.contains(username) { return "username \"\(username)\" is left to the broker" }
        if let prefix = configuration.ignoredUsernamePrefixes.first(where: { username.hasPrefix($0) }) {
            return "usernames starting with \"\(prefix)\" are left to the broker"
        }
        return nil
    }

    private enum Resolution {
        case found(DeviceIdentity)
        case refused(String)
    }

    /// The device a username names: direct with `{tenant}`, else the one served tenant that has the uid.
    private func resolve(_ named: (tenant: TenantID?, uid: String)) async throws(IoTError) -> Resolution {
        if let tenant = named.tenant { return .found(DeviceIdentity(tenant: tenant, deviceUID: named.uid)) }
        if let tenants = policy.tenants, tenants.count == 1, let only = tenants.first {
            return .found(DeviceIdentity(tenant: only, deviceUID: named.uid))
        }
        let holders: [TenantID]
        do {
            var found: [TenantID] = []
            for tenant in try await registry.tenants() where policy.serves(tenant.id) {
                if try await registry.device(.tenant(tenant.id), uid: named.uid) != nil { found.append(tenant.id) }
            }
            holders = found
        } catch {
            throw Self.storeError(error, "look up device \(named.uid)")
        }
        switch holders.count {
        case 0: return .refused("no served tenant has device \(named.uid)")
        case 1: return .found(DeviceIdentity(tenant: holders[0], deviceUID: named.uid))
        default:
            logger.warning(
                "a broker username names devices in several tenants; put {tenant} in the username template",
                metadata: ["uid": "\(named.uid)", "tenants": "\(holders.map(\.rawValue))"])
            return .refused("device \(named.uid) exists in several tenants; the username must name the tenant")
        }
    }

    /// Why `identity` may not use the broker now, or `nil`.
    private func refusal(_ identity: DeviceIdentity, clientID: String?, checkCredentials: Bool) async throws(IoTError)
        -> String?
    {
        guard policy.serves(identity.tenant) else { return "tenant \(identity.tenant) is not served by this broker" }
        guard BrokerAccountPolicy.isTopicSafe(identity.deviceUID) else {
            return "device uid \(identity.deviceUID) cannot name MQTT topics"
        }
        if let required = policy.clientID(for: identity), clientID != required {
            return "device \(identity) must connect with client id \"\(required)\", not \"\(clientID ?? "")\""
        }
        do {
            guard try await registry.device(.tenant(identity.tenant), uid: identity.deviceUID) != nil else {
                return "device \(identity) does not exist (deleted?)"
            }
            if checkCredentials, let hasCredentials, try await !hasCredentials(identity) {
                return "device \(identity) has no valid credential (revoked?)"
            }
        } catch {
            throw Self.storeError(error, "look up device \(identity)")
        }
        return nil
    }

    private static func storeError(_ error: any Error, _ what: String) -> IoTError {
        if let error = error as? IoTError { return error }
        return IoTError(.storage, "cannot \(what): \(error); check the registry and credential stores")
    }
}
