import Crypto
public import IoTCore
import _CryptoExtras

/// Hashes device passwords with PBKDF2-HMAC-SHA256 and checks them in constant time.
///
/// The encoded form is `pbkdf2-sha256$<iterations>$<salt hex>$<key hex>`, so the iteration count can be
/// raised later without invalidating stored hashes: each hash carries its own.
///
/// ```swift
/// let hasher = PasswordHasher(iterations: 600_000)
/// let stored = try hasher.hash("s3cret")
/// hasher.verify("s3cret", against: stored)   // true
/// ```
public struct PasswordHasher: Sendable {
    /// PBKDF2 iterations for new hashes. Default 600 000 (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
    public var iterations: Int

    /// Creates a hasher. Fewer than 1 000 iterations is refused by ``hash(_:)``.
    public init(iterations: Int = 600_000) {
        self.iterations = iterations
    }

    /// Hashes a password with a new random 16-byte salt.
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an empty password or too few iterations.
    public func hash(_ password: String) throws(IoTError) -> String {
        guard !password.isEmpty else { throw IoTError(.invalidArgument, "the password must not be empty") }
        guard iterations >= 1_000 else {
            throw IoTError(
                .invalidArgument, "PBKDF2 iterations \(iterations) is too low; use at least 1000 (600000 in production)"
            )
        }
        var rng = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let key = try Self.derive(password, salt: salt, iterations: iterations)
        return "pbkdf2-sha256$\(iterations)$\(Self.hex(salt))$\(Self.hex(key))"
    }

    /// Whether `password` matches an encoded hash; `false` for a malformed hash.
    public func verify(_ password: String, against encoded: String) -> Bool {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let rounds = Int(parts[1]), rounds >= 1_000,
            let salt = Self.unhex(parts[2]), let expected = Self.unhex(parts[3]), !expected.isEmpty,
            let key = try? Self.derive(password, salt: salt, iterations: rounds, length: expected.count)
        else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(key, expected) { difference |= a ^ b }
        return difference == 0
    }

    static func derive(_ password: String, salt: [UInt8], iterations: Int, length: Int = 32) throws(IoTError) -> [UInt8]
    {
        do {
            let key = try KDF.Insecure.PBKDF2.deriveKey(
                from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: length,
                unsafeUncheckedRounds: iterations)
            return key.withUnsafeBytes { Array($0) }
        } catch {
            throw IoTError(.invalidArgument, "PBKDF2 failed: \(error)")
        }
    }

    package static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func unhex(_ s: Substring) -> [UInt8]? {
        let utf8 = Array(s.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            case 0x41...0x46: c - 0x41 + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = value(utf8[i]), let lo = value(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
