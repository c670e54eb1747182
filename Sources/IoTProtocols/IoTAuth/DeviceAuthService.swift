import Dispatch
import Foundation
public import IoTCore
import IoTIO
public import Logging
import Metrics
import Synchronization

/// Device authentication, all methods behind one ``IoTCore/DeviceAuthenticator``: long-lived access tokens
/// (SHA-256 digests in the ``IoTCore/CredentialStore``), usernames and passwords (PBKDF2 hashes in the
/// ``IoTCore/CredentialStore``), TLS client certificates registered by SHA-256 fingerprint or subject
/// (``addCertificate(for:match:value:label:now:)``; a fingerprint match wins over a subject match), and short-lived tokens that a device gets by exchanging its username and
/// password (``exchange(username:password:from:)``) and renews before they expire (``refresh(_:from:)``).
///
/// Failed attempts are limited per source address (``FailedAttemptLimiter``); while an address is blocked
/// every attempt from it is ``IoTCore/IoTError/Code/rateLimited``. Revoking a credential closes the
/// device's live sessions in ``sessions`` at once.
///
/// ```swift
/// let auth = DeviceAuthService(credentials: SQLiteCredentialStore(storage: storage), sessions: sessions)
/// let issued = try await auth.addPassword(for: device, username: "meter-1", password: nil, label: "primary", now: now)
/// let session = try await auth.exchange(username: "meter-1", password: issued.password,
///                                       from: AuthenticationSource(transport: "http", address: "10.0.0.7"))
/// try await auth.authenticate(.token(session.token))   // == device, until session.expiresAt
/// ```
///
/// Short-lived tokens are kept in memory (as SHA-256 digests): a restart ends them, and devices exchange
/// their password again, which is what they do on expiry anyway.
public final class DeviceAuthService: SourceAwareAuthenticator, TokenIssuer, CredentialManager {
    /// Lifetimes, hashing cost and attempt limits.
    public struct Configuration: Sendable {
        /// How long a short-lived token is valid. Default 3 600 000 ms (one hour).
        public var sessionTokenLifetime: Duration
        /// PBKDF2 iterations for new password hashes. Default 600 000.
        public var passwordIterations: Int
        /// Short-lived tokens a device may hold at once; the oldest are dropped. Default 8.
        public var maxSessionTokensPerDevice: Int
        /// Failed-attempt limits, per source address and per username.
        public var failedAttempts: FailedAttemptLimiter.Configuration
        /// Threads that run PBKDF2 (checking and hashing passwords), a pool of their own so that password
        /// attempts never take the threads the async server needs. Default: half the cores, at least 1 (PBKDF2
        /// keeps a core busy, and the other half serves everything else).
        public var hashingThreads: Int
        /// Password checks waiting for a hashing thread, at most; one more is refused at once with
        /// ``IoTCore/IoTError/Code/unavailable`` and a retry delay (HTTP 503 + `Retry-After`). Default 32.
        public var hashingQueueCapacity: Int

        /// Half the cores, at least 1: the default of ``hashingThreads``.
        public static let defaultHashingThreads = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)

        /// Creates a configuration with the documented defaults.
        public init(
            sessionTokenLifetime: Duration = .seconds(3600), passwordIterations: Int = 600_000,
            maxSessionTokensPerDevice: Int = 8,
            failedAttempts: FailedAttemptLimiter.Configuration = .init(),
            hashingThreads: Int = Configuration.defaultHashingThreads, hashingQueueCapacity: Int = 32
        ) {
            self.hashingThreads = hashingThreads
            self.hashingQueueCapacity = hashingQueueCapacity
            self.sessionTokenLifetime = sessionTokenLifetime
            self.passwordIterations = passwordIterations
            self.maxSessionTokensPerDevice = maxSessionTokensPerDevice
            self.failedAttempts = failedAttempts
        }

        /// Checks the documented ranges: `passwordIterations` 100,000 to 10,000,000 (PBKDF2-HMAC-SHA256), the
        /// durations 1 s to 10 years, `maxFailures` 1 to 1,000,000. Messages name iotd's keys (seconds).
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            try IoTLimits.checkSetting(passwordIterations, "passwordIterations", in: 100_000...10_000_000)
            let maxSeconds = IoTLimits.maxDurationMillis / 1000
            try IoTLimits.checkSetting(
                sessionTokenLifetime.inMilliseconds / 1000, "sessionTokenSeconds", in: 1...maxSeconds, unit: "s")
            try IoTLimits.checkSetting(
                failedAttempts.window.inMilliseconds / 1000, "failedAttemptWindowSeconds", in: 1...maxSeconds, unit: "s"
            )
            try IoTLimits.checkSetting(
                failedAttempts.blockDuration.inMilliseconds / 1000, "blockSeconds", in: 1...maxSeconds, unit: "s")
            try IoTLimits.checkSetting(failedAttempts.maxFailures, "maxFailedAttempts", in: 1...1_000_000)
        }
    }

    /// A short-lived token from token exchange.
    public struct SessionToken: Sendable, Hashable {
        /// The token: send it as `Authorization: Bearer <token>` (or in a TCP handshake `token:<token>`).
        public var token: String
        /// When it stops working (UTC ms).
        public var expiresAt: Int64
        /// The device it belongs to.
        public var device: DeviceIdentity
    }

    private struct SessionEntry {
        var device: DeviceIdentity
        var issuedAt: Int64
        var expiresAt: Int64
    }

    /// The configuration in force.
    public let configuration: Configuration
    /// The live sessions that revocation closes.
    public let sessions: DeviceSessions
    /// The failed-attempt limiter.
    public let limiter: FailedAttemptLimiter
    let credentials: any CredentialStore
    let hasher: PasswordHasher
    package let clock: any IoTClock
    let logger: Logger
    private let sessionTokens = Mutex<[[UInt8]: SessionEntry]>([:])
    /// Raised whenever a short-lived token is dropped or found expired (``credentialsRevision()``).
    private let sessionRevision = Atomic<UInt64>(0)
    /// Until when ``credentialsRevision()`` has looked for expired short-lived tokens.
    private let sessionsSweptThrough = Atomic<Int64>(.min)
    /// A hash to verify against for unknown usernames, so both cases cost the same.
    private let decoyHash: String
    /// The PBKDF2 threads (``Configuration/hashingThreads``, ``Configuration/hashingQueueCapacity``).
    private let hashing: BlockingThreadPool

    /// Creates the service.
    ///
    /// - Parameters:
    ///   - clock: wall time for token expiry (tests pass a `ManualClock`).
    ///   - limiterClock: monotonic ms for the failed-attempt limiter (tests drive it by hand).
    public init(
        credentials: any CredentialStore, sessions: DeviceSessions = DeviceSessions(),
        configuration: Configuration = .init(), clock: any IoTClock = SystemClock(),
        limiterClock: (@Sendable () -> Int64)? = nil, logger: Logger = Logger(label: "iot.auth")
    ) {
        self.credentials = credentials
        self.sessions = sessions
        self.configuration = configuration
        self.hasher = PasswordHasher(iterations: configuration.passwordIterations)
        self.limiter = FailedAttemptLimiter(configuration: configuration.failedAttempts, clock: limiterClock)
        self.clock = clock
        self.logger = logger
        self.decoyHash =
            (try? PasswordHasher(iterations: max(1_000, configuration.passwordIterations)).hash("decoy")) ?? ""
        self.hashing = BlockingThreadPool(
            name: "iot-pbkdf2", maxThreads: configuration.hashingThreads,
            maxQueued: max(0, configuration.hashingQueueCapacity))
    }

    /// Runs PBKDF2 work on the hashing threads, or refuses at once when their queue is full.
    private func hashingWork<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws(IoTError) -> T {
        guard let value = await hashing.tryRun(body) else {
            Counter(label: "iot_auth_hashing_refused_total").increment()
            throw IoTError(
                .unavailable,
                "password checks are saturated (\(configuration.hashingQueueCapacity) waiting); retry after 1 s",
                retryAfterMillis: 1_000)
        }
        return value
    }

    // MARK: DeviceAuthenticator

    /// Resolves a credential with no source address (no attempt limit applies).
    public func authenticate(_ credential: DeviceCredential) async throws(IoTError) -> DeviceIdentity {
        try await resolve(credential)
    }

    /// The key ``IoTCore/DefaultIngestGateway`` caches a success under: tokens and fingerprints by
    /// themselves, a username and password by the SHA-256 digest of both (the password is never kept in
    /// memory as a key).
    public func cacheKey(for credential: DeviceCredential) -> String? {
        switch credential {
        case .usernamePassword(let username, let password):
            "p:" + PasswordHasher.hex(Secrets.digest(username + "\u{0}" + password))
        case .token(let token): "t:" + token
        case .certificateFingerprint(let fingerprint), .clientCertificate(let fingerprint, _): "c:" + fingerprint
        }
    }

    /// The credential store's ``IoTCore/CredentialStore/credentialsRevision()`` combined with the short-lived
    /// tokens' own: that one changes when one is dropped (revoked, or over the per-device limit) or has expired
    /// since the last call. `nil` when the store keeps none.
    public func credentialsRevision() async throws(IoTError) -> UInt64? {
        let stored: UInt64?
        do {
            stored = try await credentials.credentialsRevision()
        } catch {
            throw IoTError(.storage, "cannot read the credentials revision: \(error); check the credential store")
        }
        guard let stored else { return nil }
        let now = clock.now()
        let expired = sessionTokens.withLock { t in
            t.values.contains { $0.expiresAt <= now && $0.expiresAt > sessionsSweptThrough.load(ordering: .relaxed) }
        }
        sessionsSweptThrough.store(now, ordering: .relaxed)
        if expired { sessionRevision.add(1, ordering: .relaxed) }
        return RevisionWatch.combined(stored, sessionRevision.load(ordering: .relaxed))
    }

    /// Resolves a credential presented from `source`, counting failures against the source address.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/rateLimited`` (with ``IoTCore/IoTError/retryAfterMillis``) while the
    ///   address is blocked; ``IoTCore/IoTError/Code/unauthorized`` for a wrong, expired or revoked credential.
    public func authenticate(_ credential: DeviceCredential, from source: AuthenticationSource) async throws(IoTError)
        -> DeviceIdentity
    {
        // Failures count against the client address and, for a password, against the username: many
        // addresses cannot guess one account's password, and one address cannot try many accounts.
        var keys: [(key: String, what: String)] = []
        if !source.address.isEmpty { keys.append(("address \(source.address)", "from \(source.address)")) }
        if case .usernamePassword(let username, _) = credential, !username.isEmpty {
            keys.append(("username \(username)", "for username \(username)"))
        }
        for (key, what) in keys {
            if let wait = limiter.blockedFor(key, transport: source.transport) {
                throw IoTError(
                    .rateLimited,
                    "too many failed authentication attempts \(what); retry after \((wait + 999) / 1000) s",
                    retryAfterMillis: wait)
            }
        }
        do {
            let identity = try await resolve(credential)
            // A success clears its own username's failures only: the address keeps what other usernames
            // failed from it.
            if case .usernamePassword(let username, _) = credential { limiter.recordSuccess("username \(username)") }
            return identity
        } catch {
            if error.code == .unauthorized {
                limiter.recordFailure(keys: keys.map(\.key), transport: source.transport)
            } else if error.code == .unavailable, !source.address.isEmpty {
                // Refused because the hashing queue is full: counted against the address only (a flood blocks
                // its own addresses and frees the queue for others), never against the username, so that
                // flooding cannot lock a device's account.
                limiter.recordFailure(keys: ["address \(source.address)"], transport: source.transport)
            }
            throw error
        }
    }

    private func resolve(_ credential: DeviceCredential) async throws(IoTError) -> DeviceIdentity {
        switch credential {
        case .token(let token):
            guard !token.isEmpty else {
                throw IoTError(.unauthorized, "no access token was presented; send the device's access token")
            }
            let digest = Secrets.digest(token)
            let now = clock.now()
            let session = sessionTokens.withLock { t -> SessionEntry? in
                guard let e = t[digest] else { return nil }
                if e.expiresAt <= now {
                    t[digest] = nil
                    sessionRevision.add(1, ordering: .relaxed)
                    return SessionEntry(device: e.device, issuedAt: e.issuedAt, expiresAt: 0)
                }
                return e
            }
            if let session {
                guard session.expiresAt > 0 else {
                    throw IoTError(
                        .unauthorized,
                        "the token has expired; exchange the username and password for a new one (POST /api/v1/devices/auth)"
                    )
                }
                return session.device
            }
            let found: DeviceIdentity?
            do {
                found = try await credentials.identity(forTokenDigest: digest)
            } catch {
                throw IoTError(.storage, "cannot look up the access token: \(error); check the credential store")
            }
            guard let found else {
                throw IoTError(.unauthorized, "the access token is not valid; check the token or issue a new one")
            }
            return found
        case .usernamePassword(let username, let password):
            return try await verifyPassword(username: username, password: password)
        case .certificateFingerprint(let fingerprint):
            return try await certificateIdentity([(.fingerprint, fingerprint)])
        case .clientCertificate(let fingerprint, let subject):
            return try await certificateIdentity([(.fingerprint, fingerprint), (.subject, subject)])
        }
    }

    /// The device of the first (match, value) registered as a certificate credential.
    private func certificateIdentity(_ candidates: [(CertificateMatch, String)]) async throws(IoTError)
        -> DeviceIdentity
    {
        for (match, raw) in candidates {
            guard let value = try? match.normalize(raw) else { continue }
            let found: DeviceIdentity?
            do {
                found = try await credentials.identity(forCertificate: match, value: value)
            } catch {
                throw IoTError(.storage, "cannot look up the client certificate: \(error); check the credential store")
            }
            if let found { return found }
        }
        throw IoTError(
            .unauthorized,
            "the client certificate is not registered for any device; add its fingerprint or subject as a certificate credential of the device"
        )
    }

    private func verifyPassword(username: String, password: String) async throws(IoTError) -> DeviceIdentity {
        let refused = IoTError(
            .unauthorized, "the username or password is not valid; check them or ask for a new password")
        guard !username.isEmpty, !password.isEmpty else { throw refused }
        let stored: [StoredPassword]
        do {
            stored = try await credentials.passwords(forUsername: username)
        } catch {
            throw IoTError(.storage, "cannot look up the username: \(error); check the credential store")
        }
        let hashes = stored.isEmpty ? [decoyHash] : stored.reversed().map(\.hash)
        let hasher = self.hasher
        // PBKDF2 is deliberately slow: it runs on threads of its own, never on the cooperative pool.
        let match: Int? = try await hashingWork { hashes.firstIndex { hasher.verify(password, against: $0) } }
        guard match != nil, let first = stored.first else { throw refused }
        return first.device
    }

    // MARK: Token exchange

    /// Exchanges a username and password for a short-lived token valid for
    /// ``Configuration/sessionTokenLifetime``.
    public func exchange(username: String, password: String, from source: AuthenticationSource) async throws(IoTError)
        -> SessionToken
    {
        let device = try await authenticate(.usernamePassword(username: username, password: password), from: source)
        return issueSessionToken(for: device)
    }

    /// Issues a new short-lived token for the holder of a still-valid short-lived `token`; the old one stays
    /// valid until it expires.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unauthorized`` when `token` is not a valid short-lived token.
    public func refresh(_ token: String, from source: AuthenticationSource) async throws(IoTError) -> SessionToken {
        let digest = Secrets.digest(token)
        let now = clock.now()
        let device = sessionTokens.withLock { t -> DeviceIdentity? in
            guard let e = t[digest], e.expiresAt > now else { return nil }
            return e.device
        }
        guard let device else {
            if !source.address.isEmpty {
                limiter.recordFailure("address \(source.address)", transport: source.transport)
            }
            throw IoTError(
                .unauthorized,
                "only an unexpired short-lived token can be refreshed; exchange the username and password again (POST /api/v1/devices/auth)"
            )
        }
        return issueSessionToken(for: device)
    }

    private func issueSessionToken(for device: DeviceIdentity) -> SessionToken {
        let token = Secrets.newToken()
        let now = clock.now()
        let expires = now + configuration.sessionTokenLifetime.inMilliseconds
        let limit = max(1, configuration.maxSessionTokensPerDevice)
        sessionTokens.withLock { t in
            let before = t.count
            t = t.filter { $0.value.expiresAt > now }
            let mine = t.filter { $0.value.device == device }.sorted { $0.value.issuedAt < $1.value.issuedAt }
            if mine.count >= limit {
                for (digest, _) in mine.prefix(mine.count - limit + 1) { t[digest] = nil }
            }
            if t.count < before { sessionRevision.add(1, ordering: .relaxed) }
            t[Secrets.digest(token)] = SessionEntry(device: device, issuedAt: now, expiresAt: expires)
        }
        return SessionToken(token: token, expiresAt: expires, device: device)
    }

    private func dropSessionTokens(of device: DeviceIdentity) -> Int {
        defer { sessionRevision.add(1, ordering: .relaxed) }
        return sessionTokens.withLock { t in
            let before = t.count
            t = t.filter { $0.value.device != device }
            return before - t.count
        }
    }

    // MARK: TokenIssuer

    /// Issues a long-lived access token; only its SHA-256 digest is stored (as `IoTStorage.TokenAuthenticator`
    /// does, so tokens of either resolve here).
    public func issueToken(for device: DeviceIdentity, label: String, now: Int64) async throws -> String {
        let token = Secrets.newToken()
        try await credentials.addToken(digest: Secrets.digest(token), for: device, label: label, createdAt: now)
        return token
    }

    /// Issues one long-lived token per device, their digests stored together (one transaction in the SQLite
    /// credential store): how bulk provisioning creates 10,000 tokens in well under a second.
    public func issueTokens(for devices: [DeviceIdentity], label: String, now: Int64) async throws -> [String] {
        let tokens = devices.map { _ in Secrets.newToken() }
        try await credentials.addTokens(
            zip(tokens, devices).map { (Secrets.digest($0.0), $0.1) }, label: label, createdAt: now)
        return tokens
    }

    /// Revokes every access token of a device, long- and short-lived, and closes its live sessions.
    @discardableResult
    public func revokeTokens(of device: DeviceIdentity) async throws -> Int {
        let n = try await credentials.revokeTokens(of: device) + dropSessionTokens(of: device)
        await sessions.closeSessions(of: device)
        return n
    }

    /// Labels and creation times of a device's long-lived tokens.
    public func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] {
        try await credentials.tokens(of: device)
    }

    // MARK: CredentialManager

    public func addPassword(
        for device: DeviceIdentity, username: String, password: String?, label: String, now: Int64
    ) async throws -> IssuedPassword {
        guard !username.isEmpty, username.utf8.count <= 128, !username.contains(":") else {
            throw IoTError(.invalidArgument, "the username must be 1–128 characters without ':'")
        }
        let secret = password ?? Secrets.newToken()
        guard secret.utf8.count >= 8, secret.utf8.count <= 256, !secret.contains("\n") else {
            throw IoTError(
                .invalidArgument, "the password must be 8–256 characters on one line; or omit it to get a random one")
        }
        let hash = try await hashOffPool(secret)
        try await credentials.addPassword(
            StoredPassword(device: device, username: username, hash: hash, label: label, createdAt: now))
        return IssuedPassword(username: username, password: secret, label: label)
    }

    public func rotatePassword(for device: DeviceIdentity, label: String, now: Int64) async throws -> IssuedPassword {
        let existing = try await credentials.passwords(of: device)
        guard let newest = existing.last else {
            throw IoTError(.notFound, "the device has no password credential to rotate; create one first")
        }
        let issued = try await addPassword(
            for: device, username: newest.username, password: nil, label: label, now: now)
        // Keep the new one and the newest previous one: two valid passwords during rotation.
        for old in existing.dropLast() {
            try await credentials.revokePassword(of: device, label: old.label)
        }
        return issued
    }

    public func credentials(of device: DeviceIdentity) async throws -> CredentialSummary {
        let now = clock.now()
        let active = sessionTokens.withLock { t in t.values.filter { $0.device == device && $0.expiresAt > now }.count }
        return CredentialSummary(
            tokens: try await credentials.tokens(of: device),
            passwords: try await credentials.passwords(of: device).map {
                PasswordInfo(username: $0.username, label: $0.label, createdAt: $0.createdAt)
            },
            activeSessionTokens: active, liveSessions: sessions.sessions(of: device).count,
            certificates: try await credentials.certificates(of: device).map(\.info))
    }

    /// Registers a TLS client certificate of a device by SHA-256 fingerprint or subject; TLS listeners that
    /// ask for client certificates then accept it as that device (``IoTCore/DeviceCredential/clientCertificate(fingerprint:subject:)``).
    ///
    /// ```swift
    /// // openssl x509 -noout -fingerprint -sha256 -in meter-1.pem
    /// try await auth.addCertificate(for: device, match: .fingerprint, value: "AB:CD:…", label: "primary", now: now)
    /// ```
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a malformed value,
    ///   ``IoTCore/IoTError/Code/conflict`` when it is registered already or the label is taken.
    public func addCertificate(
        for device: DeviceIdentity, match: CertificateMatch, value: String, label: String, now: Int64
    ) async throws -> CertificateInfo {
        let stored = StoredCertificate(
            device: device, match: match, value: try match.normalize(value), label: label, createdAt: now)
        try await credentials.addCertificate(stored)
        return stored.info
    }

    /// Revokes one certificate credential and closes the device's live sessions (a connection that
    /// authenticated with the certificate ends at once).
    @discardableResult
    public func revokeCertificate(of device: DeviceIdentity, label: String) async throws -> Bool {
        let removed = try await credentials.revokeCertificate(of: device, label: label)
        if removed { await sessions.closeSessions(of: device) }
        return removed
    }

    /// Revokes one password credential and closes the device's live sessions (devices reconnect with the
    /// credential they still hold).
    @discardableResult
    public func revokePassword(of device: DeviceIdentity, label: String) async throws -> Bool {
        let removed = try await credentials.revokePassword(of: device, label: label)
        if removed {
            _ = dropSessionTokens(of: device)
            await sessions.closeSessions(of: device)
        }
        return removed
    }

    @discardableResult
    public func revokeAll(of device: DeviceIdentity) async throws -> Int {
        let n =
            try await credentials.revokeTokens(of: device) + credentials.revokePasswords(of: device)
            + credentials.revokeCertificates(of: device) + dropSessionTokens(of: device)
        await sessions.closeSessions(of: device)
        logger.info("device credentials revoked", metadata: ["device": "\(device)", "credentials": "\(n)"])
        return n
    }

    private func hashOffPool(_ password: String) async throws(IoTError) -> String {
        let hasher = self.hasher
        let result: Result<String, IoTError> = try await hashingWork {
            Result { () throws(IoTError) in try hasher.hash(password) }
        }
        return try result.get()
    }
}

extension DeviceAuthService.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey {
        case sessionTokenSeconds, passwordIterations, maxFailedAttempts, failedAttemptWindowSeconds, blockSeconds
    }

    /// Reads `auth:` of iotd.yaml: `sessionTokenSeconds`, `passwordIterations`, `maxFailedAttempts`,
    /// `failedAttemptWindowSeconds` and `blockSeconds`; a missing key keeps its default. A number of seconds
    /// above ten years is refused here.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var configuration = Self()
        func seconds(_ key: CodingKeys, _ fallback: Duration) throws -> Duration {
            guard let seconds = try c.decodeIfPresent(Int64.self, forKey: key) else { return fallback }
            guard (1...IoTLimits.maxDurationMillis / 1000).contains(seconds) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: c,
                    debugDescription:
                        "\(seconds) is out of range; use 1 to \(IoTLimits.maxDurationMillis / 1000) seconds")
            }
            return .seconds(seconds)
        }
        configuration.sessionTokenLifetime = try seconds(.sessionTokenSeconds, configuration.sessionTokenLifetime)
        configuration.passwordIterations = try c.decode(.passwordIterations, or: configuration.passwordIterations)
        configuration.failedAttempts.maxFailures = try c.decode(
            .maxFailedAttempts, or: configuration.failedAttempts.maxFailures)
        configuration.failedAttempts.window = try seconds(
            .failedAttemptWindowSeconds, configuration.failedAttempts.window)
        configuration.failedAttempts.blockDuration = try seconds(
            .blockSeconds, configuration.failedAttempts.blockDuration)
        self = configuration
    }
}
