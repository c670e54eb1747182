import Crypto
public import IoTCore

/// The default ``DeviceAuthenticator``: access tokens, stored only as SHA-256 digests.
///
/// ```swift
/// let auth = TokenAuthenticator(credentials: SQLiteCredentialStore(storage: storage))
/// let device = DeviceIdentity(tenant: "acme", deviceUID: "meter-1")
/// let token = try await auth.issueToken(for: device, label: "primary", now: clock.now())
/// // give `token` to the device once; it cannot be recovered later
/// let who = try await auth.authenticate(.token(token))   // == device
/// ```
///
/// Every call is one indexed lookup and nothing is cached, so a revocation in the ``CredentialStore``
/// takes effect at once. Usernames/passwords and certificate fingerprints are not handled here and are
/// ``IoTError/Code/unauthorized``.
public final class TokenAuthenticator: DeviceAuthenticator, TokenIssuer {
    private let credentials: any CredentialStore

    /// The alphabet of issued tokens: URL-safe base62.
    private static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    /// Characters per issued token: 32 base62 characters carry about 190 random bits.
    public static let tokenLength = 32

    /// Creates an authenticator that resolves tokens through `credentials`.
    public init(credentials: any CredentialStore) {
        self.credentials = credentials
    }

    /// Resolves a token to its device; any other credential kind, or an unknown or revoked token, is
    /// ``IoTError/Code/unauthorized``. A failing store is rethrown as its own error (usually
    /// ``IoTError/Code/storage``).
    public func authenticate(_ credential: DeviceCredential) async throws(IoTError) -> DeviceIdentity {
        guard case .token(let token) = credential else {
            throw IoTError(
                .unauthorized, "this credential kind is not accepted here; authenticate with an access token")
        }
        guard !token.isEmpty else {
            throw IoTError(.unauthorized, "no access token was presented; send the device's access token")
        }
        let found: DeviceIdentity?
        do {
            found = try await credentials.identity(forTokenDigest: Self.digest(token))
        } catch let error as IoTError {
            throw error
        } catch {
            throw IoTError(.storage, "cannot look up the access token: \(error); check the credential store")
        }
        guard let found else {
            throw IoTError(.unauthorized, "the access token is not valid; check the token or issue a new one")
        }
        return found
    }

    /// The credential store's ``IoTCore/CredentialStore/credentialsRevision()``.
    public func credentialsRevision() async throws(IoTError) -> UInt64? {
        do {
            return try await credentials.credentialsRevision()
        } catch {
            throw IoTError(.storage, "cannot read the credentials revision: \(error); check the credential store")
        }
    }

    /// Issues a new token for `device`, stores its digest under `label`, and returns the token.
    ///
    /// The token is returned only here: store it on the device. Several tokens may be valid at once
    /// (rotation); revoke old ones through the ``CredentialStore``.
    public func issueToken(for device: DeviceIdentity, label: String, now: Int64) async throws -> String {
        let token = Self.generateToken()
        try await credentials.addToken(digest: Self.digest(token), for: device, label: label, createdAt: now)
        return token
    }

    /// Issues one token per device, their digests stored together (``CredentialStore/addTokens(_:label:createdAt:)``).
    public func issueTokens(for devices: [DeviceIdentity], label: String, now: Int64) async throws -> [String] {
        let tokens = devices.map { _ in Self.generateToken() }
        try await credentials.addTokens(
            zip(tokens, devices).map { (Self.digest($0.0), $0.1) }, label: label, createdAt: now)
        return tokens
    }

    /// Revokes every token of a device (through the ``CredentialStore``); returns how many.
    @discardableResult
    public func revokeTokens(of device: DeviceIdentity) async throws -> Int {
        try await credentials.revokeTokens(of: device)
    }

    /// Labels and creation times of a device's tokens.
    public func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] {
        try await credentials.tokens(of: device)
    }

    /// The SHA-256 digest of a token's UTF-8 bytes: what a ``CredentialStore`` keeps.
    ///
    /// ```swift
    /// TokenAuthenticator.digest("abc").count   // 32
    /// ```
    public static func digest(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }

    /// A new random token of ``tokenLength`` base62 characters from the system's secure generator.
    static func generateToken() -> String {
        var rng = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokenLength)
        while bytes.count < tokenLength {
            // Rejection sampling keeps every character equally likely: 248 = 4 × 62.
            let r = UInt8.random(in: 0...255, using: &rng)
            if r < 248 { bytes.append(alphabet[Int(r % 62)]) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
