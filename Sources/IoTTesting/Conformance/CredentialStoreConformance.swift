public import IoTCore

/// The conformance suite of ``CredentialStore``: every line of its contract as a check.
///
/// Digests here are arbitrary 32-byte values; the store must not care what they are digests of.
///
/// ```swift
/// @Test(arguments: CredentialStoreConformance.checks)
/// func credentials(_ check: ConformanceCheck<any CredentialStore>) async throws {
///     try await check.run(InMemoryCredentialStore())
/// }
/// ```
///
/// Beyond the protocol's text, the suite requires that adding a digest that is already stored throws
/// ``IoTError/Code/conflict`` and that ``CredentialStore/tokens(of:)`` is sorted by creation time.
public enum CredentialStoreConformance {
    typealias Support = StoresConformanceSupport

    static let pump = DeviceIdentity(tenant: "acme", deviceUID: "pump-1")
    static let valve = DeviceIdentity(tenant: "acme", deviceUID: "valve-1")
    static let otherTenantPump = DeviceIdentity(tenant: "globex", deviceUID: "pump-1")

    /// A distinct 32-byte digest per seed.
    static func digest(_ seed: UInt8) -> [UInt8] {
        (0..<32).map { UInt8(truncatingIfNeeded: Int($0) &* 7 &+ Int(seed)) }
    }

    /// The checks.
    public static let checks: [ConformanceCheck<any CredentialStore>] = [
        ConformanceCheck("a stored digest resolves to its device; unknown digests resolve to nil") { store in
            try conformEqual(try await store.identity(forTokenDigest: digest(1)), nil, "empty store")
            try await store.addToken(digest: digest(1), for: pump, label: "primary", createdAt: 100)
            try await store.addToken(digest: digest(2), for: otherTenantPump, label: "primary", createdAt: 100)
            try conformEqual(try await store.identity(forTokenDigest: digest(1)), pump, "acme's pump")
            try conformEqual(
                try await store.identity(forTokenDigest: digest(2)), otherTenantPump, "same uid in another tenant")
            try conformEqual(try await store.identity(forTokenDigest: digest(3)), nil, "unknown digest")
            try conformEqual(
                try await store.identity(forTokenDigest: Array(digest(1).prefix(31))), nil, "a prefix of a digest")
        },
        ConformanceCheck("a device may hold several tokens; tokens(of:) lists labels and times, oldest first") {
            store in
            try conformEqual(try await store.tokens(of: pump), [], "no tokens yet")
            try await store.addToken(digest: digest(2), for: pump, label: "rotation-2026-11", createdAt: 200)
            try await store.addToken(digest: digest(1), for: pump, label: "primary", createdAt: 100)
            try await store.addToken(digest: digest(3), for: valve, label: "primary", createdAt: 150)
            try conformEqual(
                try await store.tokens(of: pump),
                [TokenInfo(label: "primary", createdAt: 100), TokenInfo(label: "rotation-2026-11", createdAt: 200)],
                "pump's tokens")
            try conformEqual(
                try await store.tokens(of: valve), [TokenInfo(label: "primary", createdAt: 150)], "valve's")
            try conformEqual(try await store.tokens(of: otherTenantPump), [], "same uid in another tenant")
            try conformEqual(try await store.identity(forTokenDigest: digest(1)), pump, "old token during rotation")
            try conformEqual(try await store.identity(forTokenDigest: digest(2)), pump, "new token during rotation")
        },
        ConformanceCheck("revokeToken removes one token at once and reports whether it was there") { store in
            try await store.addToken(digest: digest(1), for: pump, label: "primary", createdAt: 100)
            try await store.addToken(digest: digest(2), for: pump, label: "rotation", createdAt: 200)
            try conformEqual(try await store.revokeToken(digest: digest(1)), true, "revoke a stored token")
            try conformEqual(try await store.identity(forTokenDigest: digest(1)), nil, "revoked token")
            try conformEqual(try await store.identity(forTokenDigest: digest(2)), pump, "the other token still works")
            try conformEqual(try await store.revokeToken(digest: digest(1)), false, "revoke it again")
            try conformEqual(try await store.revokeToken(digest: digest(9)), false, "revoke an unknown token")
            try conformEqual(try await store.tokens(of: pump), [TokenInfo(label: "rotation", createdAt: 200)], "left")
        },
        ConformanceCheck("revokeTokens(of:) removes every token of one device and returns how many") { store in
            try await store.addToken(digest: digest(1), for: pump, label: "a", createdAt: 1)
            try await store.addToken(digest: digest(2), for: pump, label: "b", createdAt: 2)
            try await store.addToken(digest: digest(3), for: valve, label: "a", createdAt: 3)
            try await store.addToken(digest: digest(4), for: otherTenantPump, label: "a", createdAt: 4)
            try conformEqual(try await store.revokeTokens(of: pump), 2, "tokens revoked")
            try conformEqual(try await store.identity(forTokenDigest: digest(1)), nil, "first revoked token")
            try conformEqual(try await store.identity(forTokenDigest: digest(2)), nil, "second revoked token")
            try conformEqual(try await store.tokens(of: pump), [], "pump's tokens after revocation")
            try conformEqual(
                try await store.identity(forTokenDigest: digest(3)), valve, "another device keeps its token")
            try conformEqual(
                try await store.identity(forTokenDigest: digest(4)), otherTenantPump, "same uid in another tenant keeps"
            )
            try conformEqual(try await store.revokeTokens(of: pump), 0, "nothing left to revoke")
        },
        ConformanceCheck("adding a digest that is already stored throws conflict and keeps the first") { store in
            try await store.addToken(digest: digest(1), for: pump, label: "primary", createdAt: 100)
            try await Support.expectError(.conflict, "duplicate digest") {
                try await store.addToken(digest: digest(1), for: valve, label: "stolen", createdAt: 200)
            }
            try conformEqual(try await store.identity(forTokenDigest: digest(1)), pump, "first owner kept")
            try conformEqual(try await store.tokens(of: valve), [], "nothing added for the second device")
        },
        ConformanceCheck("password credentials resolve by username, oldest first; two may live at once (rotation)") {
            store in
            try conformEqual(try await store.passwords(forUsername: "pump-user"), [], "unknown username")
            let old = StoredPassword(device: pump, username: "pump-user", hash: "h1", label: "primary", createdAt: 100)
            let new = StoredPassword(device: pump, username: "pump-user", hash: "h2", label: "rotation", createdAt: 200)
            try await store.addPassword(new)
            try await store.addPassword(old)
            try await store.addPassword(
                StoredPassword(device: valve, username: "valve-user", hash: "h3", label: "primary", createdAt: 150))
            try conformEqual(try await store.passwords(forUsername: "pump-user"), [old, new], "both during rotation")
            try conformEqual(try await store.passwords(of: pump), [old, new], "by device")
            try conformEqual(try await store.passwords(of: otherTenantPump), [], "same uid in another tenant")
            try conformEqual(try await store.revokePassword(of: pump, label: "primary"), true, "revoke the old one")
            try conformEqual(try await store.passwords(forUsername: "pump-user"), [new], "the new one is left")
            try conformEqual(try await store.revokePassword(of: pump, label: "primary"), false, "revoke it again")
            try conformEqual(try await store.revokePasswords(of: pump), 1, "revoke the rest")
            try conformEqual(try await store.passwords(forUsername: "pump-user"), [], "nothing left")
            try conformEqual(try await store.passwords(forUsername: "valve-user").count, 1, "another device keeps its")
        },
        ConformanceCheck("a username belongs to one device; a label is unique per device") { store in
            try await store.addPassword(
                StoredPassword(device: pump, username: "shared", hash: "h1", label: "primary", createdAt: 1))
            try await Support.expectError(.conflict, "username of another device") {
                try await store.addPassword(
                    StoredPassword(device: valve, username: "shared", hash: "h2", label: "primary", createdAt: 2))
            }
            try await Support.expectError(.conflict, "same label twice") {
                try await store.addPassword(
                    StoredPassword(device: pump, username: "shared", hash: "h3", label: "primary", createdAt: 3))
            }
            try conformEqual(try await store.passwords(forUsername: "shared").map(\.hash), ["h1"], "first kept")
        },
        ConformanceCheck(
            "certificates: a fingerprint or subject resolves to its device, belongs to one device, and revokes"
        ) {
            store in
            let fingerprint = String(repeating: "ab", count: 32)
            let byFingerprint = StoredCertificate(
                device: pump, match: .fingerprint, value: fingerprint, label: "primary", createdAt: 100)
            let bySubject = StoredCertificate(
                device: pump, match: .subject, value: "O=Acme,CN=pump-1", label: "subject", createdAt: 200)
            try conformEqual(
                try await store.identity(forCertificate: .fingerprint, value: fingerprint), nil, "empty store")
            try await store.addCertificate(bySubject)
            try await store.addCertificate(byFingerprint)
            try await store.addCertificate(
                StoredCertificate(
                    device: otherTenantPump, match: .subject, value: "O=Globex,CN=pump-1", label: "primary",
                    createdAt: 1))
            try conformEqual(
                try await store.identity(forCertificate: .fingerprint, value: fingerprint), pump, "fingerprint")
            try conformEqual(
                try await store.identity(forCertificate: .subject, value: "O=Acme,CN=pump-1"), pump, "subject")
            try conformEqual(
                try await store.identity(forCertificate: .subject, value: fingerprint), nil,
                "a fingerprint is not a subject")
            try conformEqual(try await store.certificates(of: pump), [byFingerprint, bySubject], "oldest first")
            try await Support.expectError(.conflict, "a fingerprint of another device") {
                try await store.addCertificate(
                    StoredCertificate(
                        device: valve, match: .fingerprint, value: fingerprint, label: "primary", createdAt: 3))
            }
            try await Support.expectError(.conflict, "same label twice") {
                try await store.addCertificate(
                    StoredCertificate(
                        device: pump, match: .fingerprint, value: String(repeating: "cd", count: 32), label: "primary",
                        createdAt: 4))
            }
            try conformEqual(try await store.revokeCertificate(of: pump, label: "primary"), true, "revoke one")
            try conformEqual(
                try await store.identity(forCertificate: .fingerprint, value: fingerprint), nil, "revoked fingerprint")
            try conformEqual(try await store.revokeCertificate(of: pump, label: "primary"), false, "revoke it again")
            try conformEqual(try await store.revokeCertificates(of: pump), 1, "revoke the rest")
            try conformEqual(try await store.certificates(of: pump), [], "nothing left")
            try conformEqual(
                try await store.identity(forCertificate: .subject, value: "O=Globex,CN=pump-1"), otherTenantPump,
                "another tenant keeps its")
        },
        ConformanceCheck("a kept credentialsRevision changes on every revocation and password or certificate change") {
            store in
            // Optional: a store without one (nil) is looked up again after the cache lifetime.
            guard var last = try await store.credentialsRevision() else { return }
            func changed(_ what: String, _ change: () async throws -> Void) async throws {
                try await change()
                guard let now = try await store.credentialsRevision(), now != last else {
                    throw ConformanceFailure("credentialsRevision did not change after \(what)")
                }
                last = now
            }
            try await store.addToken(digest: digest(1), for: pump, label: "a", createdAt: 1)
            try await store.addToken(digest: digest(2), for: pump, label: "b", createdAt: 2)
            last = try await store.credentialsRevision() ?? last
            try await changed("revokeToken") { _ = try await store.revokeToken(digest: digest(1)) }
            try await changed("revokeTokens(of:)") { _ = try await store.revokeTokens(of: pump) }
            let password = StoredPassword(device: pump, username: "pump-user", hash: "h", label: "a", createdAt: 3)
            let certificate = StoredCertificate(
                device: pump, match: .subject, value: "O=Acme,CN=pump-1", label: "a", createdAt: 4)
            do {
                try await changed("addPassword") { try await store.addPassword(password) }
                try await changed("revokePassword") { _ = try await store.revokePassword(of: pump, label: "a") }
            } catch let error as IoTError where error.code == .invalidArgument {}  // keeps no passwords
            do {
                try await changed("addCertificate") { try await store.addCertificate(certificate) }
                try await changed("revokeCertificates(of:)") { _ = try await store.revokeCertificates(of: pump) }
            } catch let error as IoTError where error.code == .invalidArgument {}  // keeps no certificates
        },
    ]
}
