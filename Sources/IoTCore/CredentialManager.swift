/// Manages every kind of device credential at run time; the management API uses it.
///
/// ## Implementing a credential manager
/// - Secrets are generated or accepted here and returned once; only digests or slow-KDF hashes are stored.
/// - Rotation keeps the previous credential valid next to the new one (two at most), so a device can be
///   moved to the new one without an outage; revoke the old one when done.
/// - Revocation takes effect for the next request and closes live sessions of the device within a second.
public protocol CredentialManager: Sendable {
    /// Creates a username/password credential for a device. With `password` `nil` a random one is
    /// generated. Returns the password, shown this once.
    func addPassword(for device: DeviceIdentity, username: String, password: String?, label: String, now: Int64)
        async throws -> IssuedPassword
    /// Adds a new password under the device's existing username and keeps the newest previous one valid
    /// (two at most: older ones are removed). Returns the new password, shown this once.
    func rotatePassword(for device: DeviceIdentity, label: String, now: Int64) async throws -> IssuedPassword
    /// The credentials of a device, without secrets.
    func credentials(of device: DeviceIdentity) async throws -> CredentialSummary
    /// Revokes one password credential by label and closes the device's live sessions.
    @discardableResult
    func revokePassword(of device: DeviceIdentity, label: String) async throws -> Bool
    /// Revokes every credential of a device (tokens, passwords, short-lived tokens) and closes its live
    /// sessions; returns how many credentials were removed.
    @discardableResult
    func revokeAll(of device: DeviceIdentity) async throws -> Int
    /// Registers a TLS client certificate of a device, by SHA-256 fingerprint or by subject
    /// (``CertificateMatch/normalize(_:)`` says which forms are accepted). Returns what was stored.
    func addCertificate(for device: DeviceIdentity, match: CertificateMatch, value: String, label: String, now: Int64)
        async throws -> CertificateInfo
    /// Revokes one certificate credential by label and closes the device's live sessions.
    @discardableResult
    func revokeCertificate(of device: DeviceIdentity, label: String) async throws -> Bool
}

extension CredentialManager {
    /// Default for managers without certificate credentials: refuses with ``IoTError/Code/invalidArgument``.
    public func addCertificate(
        for device: DeviceIdentity, match: CertificateMatch, value: String, label: String, now: Int64
    ) async throws -> CertificateInfo {
        throw IoTError(
            .invalidArgument, "\(type(of: self)) does not manage certificate credentials; use DeviceAuthService")
    }
    /// Default for managers without certificate credentials: nothing to revoke.
    @discardableResult
    public func revokeCertificate(of device: DeviceIdentity, label: String) async throws -> Bool { false }
}

/// A password credential as created: the password is shown this once.
public struct IssuedPassword: Sendable, Hashable, Codable {
    /// The username.
    public var username: String
    /// The password.
    public var password: String
    /// The credential's label.
    public var label: String
    /// Creates an issued password.
    public init(username: String, password: String, label: String) {
        self.username = username
        self.password = password
        self.label = label
    }
}

/// What is shown about a device's credentials.
public struct CredentialSummary: Sendable, Hashable, Codable {
    /// Long-lived access tokens.
    public var tokens: [TokenInfo]
    /// Username/password credentials.
    public var passwords: [PasswordInfo]
    /// Short-lived tokens issued by token exchange and still valid.
    public var activeSessionTokens: Int
    /// Live connections (WebSocket, TCP).
    public var liveSessions: Int
    /// TLS client certificates (by fingerprint or subject).
    public var certificates: [CertificateInfo]
    /// Creates a summary.
    public init(
        tokens: [TokenInfo], passwords: [PasswordInfo], activeSessionTokens: Int, liveSessions: Int,
        certificates: [CertificateInfo] = []
    ) {
        self.tokens = tokens
        self.passwords = passwords
        self.activeSessionTokens = activeSessionTokens
        self.liveSessions = liveSessions
        self.certificates = certificates
    }

    private enum CodingKeys: String, CodingKey {
        case tokens, passwords, activeSessionTokens, liveSessions, certificates
    }

    /// Decodes a summary; `certificates` may be absent (summaries written before it existed).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tokens = try c.decode([TokenInfo].self, forKey: .tokens)
        passwords = try c.decode([PasswordInfo].self, forKey: .passwords)
        activeSessionTokens = try c.decode(Int.self, forKey: .activeSessionTokens)
        liveSessions = try c.decode(Int.self, forKey: .liveSessions)
        certificates = try c.decodeIfPresent([CertificateInfo].self, forKey: .certificates) ?? []
    }
}

/// What is shown about a stored password credential (never the hash).
public struct PasswordInfo: Sendable, Hashable, Codable {
    /// The username.
    public var username: String
    /// The label.
    public var label: String
    /// When it was created (UTC ms).
    public var createdAt: Int64
    /// Creates password info.
    public init(username: String, label: String, createdAt: Int64) {
        self.username = username
        self.label = label
        self.createdAt = createdAt
    }
}
