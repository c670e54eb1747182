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
