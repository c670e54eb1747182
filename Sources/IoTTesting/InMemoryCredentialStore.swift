public import IoTCore
import Synchronization

/// A ``CredentialStore`` in memory. Digests are stored as given (no hashing happens here).
///
/// ```swift
/// let credentials = InMemoryCredentialStore()
/// try await credentials.addToken(digest: digest, for: DeviceIdentity(tenant: "acme", deviceUID: "pump-1"),
///                                label: "primary", createdAt: 0)
/// ```
public final class InMemoryCredentialStore: CredentialStore {
    private struct Entry {
        var identity: DeviceIdentity
        var info: TokenInfo
    }
    private let tokens = Mutex<[[UInt8]: Entry]>([:])
    private let passwordList = Mutex<[StoredPassword]>([])
    private let certificateList = Mutex<[StoredCertificate]>([])
    private let revision = Atomic<UInt64>(0)

    /// Creates an empty credential store.
    public init() {}

    public func addToken(digest: [UInt8], for device: DeviceIdentity, label: String, createdAt: Int64) async throws {
        guard !digest.isEmpty else {
            throw IoTError(.invalidArgument, "cannot store an empty token digest; pass the SHA-256 digest of the token")
        }
        try tokens.withLock { t throws(IoTError) in
            guard t[digest] == nil else {
                throw IoTError(.conflict, "this token digest is already stored; issue a new token")
            }
            t[digest] = Entry(identity: device, info: TokenInfo(label: label, createdAt: createdAt))
        }
    }

    /// Raised after every change but a token's addition.
    public func credentialsRevision() async throws -> UInt64? { revision.load(ordering: .relaxed) }

    public func identity(forTokenDigest digest: [UInt8]) async throws -> DeviceIdentity? {
        tokens.withLock { $0[digest]?.identity }
    }

    @discardableResult
    public func revokeToken(digest: [UInt8]) async throws -> Bool {
        defer { revision.add(1, ordering: .relaxed) }
        return tokens.withLock { $0.removeValue(forKey: digest) != nil }
    }

    @discardableResult
    public func revokeTokens(of device: DeviceIdentity) async throws -> Int {
        defer { revision.add(1, ordering: .relaxed) }
        return tokens.withLock { t in
            let before = t.count
            t = t.filter { $0.value.identity != device }
            return before - t.count
        }
    }

    public func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] {
        tokens.withLock { t in
            t.values.filter { $0.identity == device }.map(\.info).sorted {
                ($0.createdAt, $0.label) < ($1.createdAt, $1.label)
            }
        }
    }

    public func addPassword(_ credential: StoredPassword) async throws {
        defer { revision.add(1, ordering: .relaxed) }
        guard !credential.username.isEmpty, !credential.hash.isEmpty else {
            throw IoTError(.invalidArgument, "a password credential needs a username and a password hash")
        }
        try passwordList.withLock { list throws(IoTError) in
            if list.contains(where: { $0.username == credential.username && $0.device != credential.device }) {
                throw IoTError(.conflict, "username '\(credential.username)' belongs to another device; pick another")
            }
            if list.contains(where: { $0.device == credential.device && $0.label == credential.label }) {
                throw IoTError(
                    .conflict,
                    "device already has a password credential labelled '\(credential.label)'; use another label")
            }
            list.append(credential)
        }
    }

    public func passwords(forUsername username: String) async throws -> [StoredPassword] {
        passwordList.withLock { Self.sorted($0.filter { $0.username == username }) }
    }

    public func passwords(of device: DeviceIdentity) async throws -> [StoredPassword] {
        passwordList.withLock { Self.sorted($0.filter { $0.device == device }) }
    }

    @discardableResult
    public func revokePassword(of device: DeviceIdentity, label: String) async throws -> Bool {
        defer { revision.add(1, ordering: .relaxed) }
        return passwordList.withLock { list in
            let before = list.count
            list.removeAll { $0.device == device && $0.label == label }
            return list.count < before
        }
    }

    @discardableResult
    public func revokePasswords(of device: DeviceIdentity) async throws -> Int {
        defer { revision.add(1, ordering: .relaxed) }
        return passwordList.withLock { list in
            let before = list.count
            list.removeAll { $0.device == device }
            return before - list.count
        }
    }

    public func addCertificate(_ credential: StoredCertificate) async throws {
        defer { revision.add(1, ordering: .relaxed) }
        var credential = credential
        credential.value = try credential.match.normalize(credential.value)
        try certificateList.withLock { list throws(IoTError) in
            if let other = list.first(where: { $0.match == credential.match && $0.value == credential.value }) {
                throw IoTError(
                    .conflict,
                    other.device == credential.device
                        ? "this certificate \(credential.match.rawValue) is already registered for the device"
                        : "this certificate \(credential.match.rawValue) belongs to another device; revoke it there first"
                )
            }
            if list.contains(where: { $0.device == credential.device && $0.label == credential.label }) {
                throw IoTError(
                    .conflict,
                    "device already has a certificate credential labelled '\(credential.label)'; use another label")
            }
            list.append(credential)
        }
    }

    public func identity(forCertificate match: CertificateMatch, value: String) async throws -> DeviceIdentity? {
        certificateList.withLock { $0.first { $0.match == match && $0.value == value }?.device }
    }

    public func certificates(of device: DeviceIdentity) async throws -> [StoredCertificate] {
        certificateList.withLock { list in
            list.filter { $0.device == device }.sorted { ($0.createdAt, $0.label) < ($1.createdAt, $1.label) }
        }
    }

    @discardableResult
    public func revokeCertificate(of device: DeviceIdentity, label: String) async throws -> Bool {
        defer { revision.add(1, ordering: .relaxed) }
        return certificateList.withLock { list in
            let before = list.count
            list.removeAll { $0.device == device && $0.label == label }
            return list.count < before
        }
    }

    @discardableResult
    public func revokeCertificates(of device: DeviceIdentity) async throws -> Int {
        defer { revision.add(1, ordering: .relaxed) }
        return certificateList.withLock { list in
            let before = list.count
            list.removeAll { $0.device == device }
            return before - list.count
        }
    }

    private static func sorted(_ list: [StoredPassword]) -> [StoredPassword] {
        list.sorted { ($0.createdAt, $0.label) < ($1.createdAt, $1.label) }
    }
}
