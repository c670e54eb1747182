import Crypto

/// Random secrets and token digests, compatible with `IoTStorage.TokenAuthenticator` (same alphabet,
/// length and SHA-256 digest), so tokens issued by either resolve through the same ``IoTCore/CredentialStore``.
package enum Secrets {
    private static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// 32 base62 characters (about 190 random bits) from the system's secure generator.
    package static func newToken(length: Int = 32) -> String {
        var rng = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        while bytes.count < length {
            let r = UInt8.random(in: 0...255, using: &rng)
            if r < 248 { bytes.append(alphabet[Int(r % 62)]) }  // 248 = 4 × 62: no bias
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The SHA-256 digest of a token's UTF-8 bytes.
    package static func digest(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }
}
