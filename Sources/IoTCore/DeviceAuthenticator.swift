/// What a device presents to prove who it is.
public enum DeviceCredential: Sendable, Hashable {
    /// An access token (HTTP `Authorization: Bearer`, ThingsBoard's URL token, MQTT username).
    case token(String)
    /// A username and password.
    case usernamePassword(username: String, password: String)
    /// The SHA-256 fingerprint (lowercase hex) of a TLS client certificate.
    case certificateFingerprint(String)
    /// A TLS client certificate that the listener verified against its client CA: the SHA-256 fingerprint
    /// of its DER encoding (lowercase hex, no colons) and its subject in RFC 4514 form (as
    /// `openssl x509 -noout -subject -nameopt RFC2253` prints it). It resolves to the device that has the
    /// fingerprint, or else the subject, registered as a certificate credential.
    case clientCertificate(fingerprint: String, subject: String)
}

/// Resolves a device's credential to the tenant and device it belongs to.
///
/// ## Implementing an authenticator
/// - Return the identity, or throw ``IoTError/Code/unauthorized`` with a message that does not reveal
///   whether the device exists. Throw other codes only for failures of the authenticator itself.
/// - It sits on the ingest hot path: make the common case a single indexed lookup, and cache what you
///   can, but make revocation take effect within a second.
/// - A credential kind you do not handle is ``IoTError/Code/unauthorized``.
public protocol DeviceAuthenticator: Sendable {
    /// Resolves a credential.
    func authenticate(_ credential: DeviceCredential) async throws(IoTError) -> DeviceIdentity

    /// The key under which ``DefaultIngestGateway`` may remember a successful ``authenticate(_:)`` of
    /// `credential` for its short cache, or `nil` to look it up every time. The default keys tokens and
    /// certificate fingerprints by themselves and never caches a username and password (a key must not
    /// hold the password: an authenticator that checks passwords returns a digest of both).
    func cacheKey(for credential: DeviceCredential) -> String?

    /// A number that changes whenever a credential is revoked or changed, or added where an addition can change
    /// what an earlier lookup found (a certificate fingerprint that wins over a subject), also by another
    /// process sharing the store; `nil` when the authenticator keeps none (the default).
    ///
    /// ``DefaultIngestGateway`` reads it at most about twice per
    /// ``DefaultIngestGateway/Configuration/authenticationCacheLifetime``, off the devices' path, and keeps a
    /// successful lookup for as long as it stays the same: a device that posts every few seconds then costs
    /// no lookup, and a revocation still takes effect within the lifetime. Make it one indexed read; a
    /// failure counts as `nil` (lookups are then reused for the lifetime only).
    func credentialsRevision() async throws(IoTError) -> UInt64?
}

extension DeviceAuthenticator {
    /// Tokens and certificate fingerprints by themselves; `nil` for a username and password.
    public func cacheKey(for credential: DeviceCredential) -> String? {
        switch credential {
        case .token(let token): "t:" + token
        case .certificateFingerprint(let fingerprint): "c:" + fingerprint
        case .clientCertificate(let fingerprint, _): "c:" + fingerprint
        case .usernamePassword: nil
        }
    }

    /// None: a successful lookup is reused for the gateway's cache lifetime only.
    public func credentialsRevision() async throws(IoTError) -> UInt64? { nil }
}

/// Issues and revokes device access tokens; the management API uses it.
///
/// ## Implementing a token issuer
/// - ``issueToken(for:label:now:)`` returns a new random token (at least 128 bits of entropy) and stores
///   only what is needed to check it later (a digest); the token itself is shown once, to the caller.
/// - A device may hold several tokens (rotation); revoking takes effect for the next request.
public protocol TokenIssuer: Sendable {
    /// Issues a new token for a device and returns it.
    func issueToken(for device: DeviceIdentity, label: String, now: Int64) async throws -> String
    /// Issues one new token for each device (bulk provisioning) and returns them in the same order. The
    /// default calls ``issueToken(for:label:now:)`` for each.
    func issueTokens(for devices: [DeviceIdentity], label: String, now: Int64) async throws -> [String]
    /// Revokes every token of a device; returns how many.
    @discardableResult
    func revokeTokens(of device: DeviceIdentity) async throws -> Int
    /// Labels and creation times of a device's tokens.
    func tokens(of device: DeviceIdentity) async throws -> [TokenInfo]
}

/// Where an authentication attempt comes from: the transport and the peer's address. Authenticators
/// that limit failed attempts per source (``DeviceAuthenticator/authenticate(_:from:)``) key on it.
public struct AuthenticationSource: Sendable, Hashable {
    /// The transport (`http`, `websocket`, `tcp`).
    public var transport: String
    /// The peer's address without the port (`127.0.0.1`), or `""` when unknown.
    public var address: String

    /// Creates a source.
    public init(transport: String, address: String) {
        self.transport = transport
        self.address = address
    }
}

/// A device authenticator that also takes the source of each attempt into account (failed-attempt
/// limits). Transports call ``authenticate(_:from:)`` when the authenticator conforms.
public protocol SourceAwareAuthenticator: DeviceAuthenticator {
    /// Resolves a credential presented from `source`; throws ``IoTError/Code/rateLimited`` while the
    /// source is blocked after too many failures.
    func authenticate(_ credential: DeviceCredential, from source: AuthenticationSource) async throws(IoTError)
        -> DeviceIdentity
}

extension DeviceAuthenticator {
    /// ``SourceAwareAuthenticator/authenticate(_:from:)`` when this authenticator implements it,
    /// ``authenticate(_:)`` otherwise. Transports call this.
    public func authenticate(_ credential: DeviceCredential, source: AuthenticationSource) async throws(IoTError)
        -> DeviceIdentity
    {
        if let aware = self as? any SourceAwareAuthenticator {
            return try await aware.authenticate(credential, from: source)
        }
        return try await authenticate(credential)
    }
}

extension TokenIssuer {
    /// Calls ``issueToken(for:label:now:)`` for each device.
    public func issueTokens(for devices: [DeviceIdentity], label: String, now: Int64) async throws -> [String] {
        var tokens: [String] = []
        tokens.reserveCapacity(devices.count)
        for device in devices { tokens.append(try await issueToken(for: device, label: label, now: now)) }
        return tokens
    }
}
