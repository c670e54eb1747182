import Crypto
public import Foundation
import IoTCore
import JWTKit
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The keys that sign and verify access tokens: Ed25519 keys in a JSON Web Key Set file, the first of which
/// signs while every one verifies.
///
/// Rotation needs no downtime: ``rotate(file:now:keep:)`` (`iotd keys rotate`) writes a new key first and keeps
/// the previous ones, and a running server reads the file again when it changes (checked at most once a
/// second), so tokens signed with an older key stay valid until they expire or the key is dropped from the
/// file.
///
/// The file (mode 0600):
///
/// ```json
/// {"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "2026-12-05T14:00:00Z",
///            "x": "<public key, base64url>", "d": "<private key, base64url>"}]}
/// ```
public final class SigningKeys: Sendable {
    private struct Loaded: Sendable {
        var collection: JWTKeyCollection
        var signingKID: String
        var modified: Date?
    }

    private struct State: Sendable {
        var loaded: Loaded?
        var keys: [KeyFile.Key]
        var modified: Date?
        var checkedAt: ContinuousClock.Instant
    }

    /// The key file; `nil` for keys that live only in memory (tests, or a server without a data directory).
    public let file: String?
    private let state: Mutex<State>

    /// Reads the keys of `file`, creating it with one new key (mode 0600) when it does not exist.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the file when it cannot be read or holds no
    ///   usable Ed25519 private key.
    public init(file: String) throws {
        if !FileManager.default.fileExists(atPath: file) {
            try Self.write(file: file, keys: [Self.newKey(now: Date())])
        }
        self.file = file
        let keys = try Self.checked(Self.read(file).keys, file: file)
        state = Mutex(State(loaded: nil, keys: keys, modified: Self.modified(file), checkedAt: .now))
    }

    /// One new key in memory: tokens it signs stop verifying when the process ends.
    public init() {
        file = nil
        state = Mutex(State(loaded: nil, keys: [Self.newKey(now: Date())], modified: nil, checkedAt: .now))
    }

    /// Signs `payload` with the first key.
    func sign(_ payload: some JWTPayload) async throws -> String {
        let (collection, kid) = try await current()
        return try await collection.sign(payload, kid: JWKIdentifier(string: kid))
    }

    /// Verifies a token's signature with the key its header names and returns its payload.
    func verify<Payload: JWTPayload>(_ token: String, as type: Payload.Type) async throws -> Payload {
        let (collection, _) = try await current()
        return try await collection.verify(token, as: type)
    }

    /// The collection in force, read again from the file when it changed (checked at most once a second). A
    /// file that became unreadable keeps the keys read before until it is readable again.
    private func current() async throws -> (JWTKeyCollection, String) {
        let now = ContinuousClock.now
        let (snapshot, due) = state.withLock { s -> (State, Bool) in
            let due = file != nil && now - s.checkedAt >= .seconds(1)
            if due { s.checkedAt = now }
            return (s, due)
        }
        var keys = snapshot.keys
        var modified = snapshot.modified
        // A file caught half-written, or broken by hand, keeps the keys in force; it is read again a second later.
        if due, let file, let changed = Self.modified(file), changed != snapshot.modified,
            let fresh = try? Self.checked(Self.read(file).keys, file: file)
        {
            keys = fresh
            modified = changed
        }
        if let loaded = snapshot.loaded, loaded.modified == modified, loaded.signingKID == keys.first?.kid {
            return (loaded.collection, loaded.signingKID)
        }
        let loaded = try await Self.collection(of: keys, modified: modified)
        state.withLock { s in
            s.keys = keys
            s.modified = modified
            s.loaded = loaded
        }
        return (loaded.collection, loaded.signingKID)
    }

    private static func modified(_ file: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date
    }

    /// The keys, each checked to be an Ed25519 private key, the first one the signing key.
    private static func checked(_ keys: [KeyFile.Key], file: String) throws -> [KeyFile.Key] {
        guard !keys.isEmpty else {
            throw IoTError(
                .invalidArgument, "the signing key file \(file) holds no key; add one with `iotd keys rotate`")
        }
        for key in keys {
            guard let d = Data(base64URL: key.d), (try? Curve25519.Signing.PrivateKey(rawRepresentation: d)) != nil
            else {
                throw IoTError(
                    .invalidArgument,
                    "key \"\(key.kid)\" of the signing key file \(file) is not an Ed25519 private key; remove it")
            }
        }
        return keys
    }

    /// Writes a new key at the head of `file` (creating it), keeping at most `keep` keys in all; returns the new
    /// key's id. Servers that read the file start signing with the new key within a second and still verify
    /// tokens of the kept ones.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` when the file exists and cannot be read.
    @discardableResult
    public static func rotate(file: String, now: Date = Date(), keep: Int = 3) throws -> String {
        var keys: [KeyFile.Key] = []
        if FileManager.default.fileExists(atPath: file) { keys = try read(file).keys }
        let key = newKey(now: now)
        try write(file: file, keys: Array(([key] + keys).prefix(max(keep, 1))))
        return key.kid
    }

    struct KeyFile: Codable {
        struct Key: Codable {
            var kty = "OKP"
            var crv = "Ed25519"
            var alg = "EdDSA"
            var kid: String
            var x: String
            var d: String
        }
        var keys: [Key]
    }

    static func newKey(now: Date) -> KeyFile.Key {
        let key = Curve25519.Signing.PrivateKey()
        let stamp = ISO8601DateFormatter().string(from: now)
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return KeyFile.Key(
            kid: "\(stamp)-\(suffix)", x: base64URL(key.publicKey.rawRepresentation),
            d: base64URL(key.rawRepresentation))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func read(_ file: String) throws -> KeyFile {
        do {
            return try JSONDecoder().decode(KeyFile.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw IoTError(
                .invalidArgument,
                "the signing key file \(file) cannot be read (\(error)); fix it, or move it away and let iotd create a new one (every access token then has to be issued again)"
            )
        }
    }

    static func write(file: String, keys: [KeyFile.Key]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(KeyFile(keys: keys))
        let temporary = file + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600])
        else {
            throw IoTError(
                .invalidArgument,
                "cannot write the signing key file \(file): check that its directory exists and is writable")
        }
        guard rename(temporary, file) == 0 else {
            throw IoTError(
                .invalidArgument, "cannot replace the signing key file \(file): \(String(cString: strerror(errno)))",
                nativeCode: errno, domain: .posix)
        }
    }

    private static func collection(of keys: [KeyFile.Key], modified: Date?) async throws -> Loaded {
        let collection = JWTKeyCollection()
        for key in keys {
            _ = await collection.add(
                eddsa: try EdDSA.PrivateKey(d: key.d, curve: .ed25519), kid: JWKIdentifier(string: key.kid))
        }
        return Loaded(collection: collection, signingKID: keys[0].kid, modified: modified)
    }
}

extension Data {
    /// Decodes base64url without padding (RFC 4648 §5).
    init?(base64URL text: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        self.init(base64Encoded: base64)
    }
}
