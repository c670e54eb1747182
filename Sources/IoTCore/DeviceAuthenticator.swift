/// What a device presents to prove who it is.
public enum DeviceCredential: Sendable, Hashable {
    /// An access token (HTTP `Authorization: Bearer`, ThingsBoard's URL token, MQTT username).
    case token(String)
    /// A username and password.
    case usernamePassword(username: String, password: String)
    /// The SHA-256 fingerprint (lowercase hex) of a TLS client certificate.
    case certificateFingerprint(String)
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
    /// Revokes every token of a device; returns how many.
    @discardableResult
    func revokeTokens(of device: DeviceIdentity) async throws -> Int
    /// Labels and creation times of a device's tokens.
    func tokens(of device: DeviceIdentity) async throws -> [TokenInfo]
}
