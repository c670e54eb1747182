import IoTCore
import IoTStorage
import IoTTesting
import Testing

@Suite("TokenAuthenticator")
struct TokenAuthenticatorTests {
    let pump = DeviceIdentity(tenant: "acme", deviceUID: "pump-1")

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
    }

    @Test func digestIsSHA256() {
        // NIST FIPS 180-2 test vectors.
        #expect(
            Self.hex(TokenAuthenticator.digest("abc"))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Self.hex(TokenAuthenticator.digest(""))
                == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// Issue → authenticate → revoke → unauthorized, against one credential store.
    func lifecycle(_ credentials: any CredentialStore) async throws {
        let auth = TokenAuthenticator(credentials: credentials)
        let token = try await auth.issueToken(for: pump, label: "primary", now: 1000)
        #expect(try await auth.authenticate(.token(token)) == pump)
        #expect(try await credentials.identity(forTokenDigest: TokenAuthenticator.digest(token)) == pump)
        #expect(try await credentials.tokens(of: pump) == [TokenInfo(label: "primary", createdAt: 1000)])
        #expect(try await credentials.revokeToken(digest: TokenAuthenticator.digest(token)))
        let revoked = await #expect(throws: IoTError.self) { try await auth.authenticate(.token(token)) }
        #expect(revoked?.code == .unauthorized)
        let unknown = await #expect(throws: IoTError.self) { try await auth.authenticate(.token("no-such-token")) }
        #expect(unknown?.code == .unauthorized)
        #expect(revoked?.message == unknown?.message, "the message must not tell revoked from unknown")
    }

    @Test func lifecycleSQLite() async throws {
        try await withStoresTemporaryStorage { storage, _ in
            try await lifecycle(SQLiteCredentialStore(storage: storage))
        }
    }

    @Test func lifecycleInMemory() async throws {
        try await lifecycle(InMemoryCredentialStore())
    }

    @Test func rotationKeepsBothTokensUntilTheOldOneIsRevoked() async throws {
        try await withStoresTemporaryStorage { storage, _ in
            let credentials = SQLiteCredentialStore(storage: storage)
            let auth = TokenAuthenticator(credentials: credentials)
            let old = try await auth.issueToken(for: pump, label: "primary", now: 1)
            let new = try await auth.issueToken(for: pump, label: "rotation-2026-11", now: 2)
            #expect(old != new)
            #expect(try await auth.authenticate(.token(old)) == pump)
            #expect(try await auth.authenticate(.token(new)) == pump)
            #expect(try await credentials.tokens(of: pump).map(\.label) == ["primary", "rotation-2026-11"])
            #expect(try await credentials.revokeToken(digest: TokenAuthenticator.digest(old)))
            await #expect(throws: IoTError.self) { try await auth.authenticate(.token(old)) }
            #expect(try await auth.authenticate(.token(new)) == pump)
            #expect(try await credentials.revokeTokens(of: pump) == 1)
            await #expect(throws: IoTError.self) { try await auth.authenticate(.token(new)) }
        }
    }

    @Test func issuedTokensAreLongURLSafeAndDistinct() async throws {
        let auth = TokenAuthenticator(credentials: InMemoryCredentialStore())
        var seen: Set<String> = []
        for i in 0..<200 {
            let token = try await auth.issueToken(for: pump, label: "t\(i)", now: Int64(i))
            #expect(token.utf8.count == TokenAuthenticator.tokenLength)
            #expect(TokenAuthenticator.tokenLength >= 28, "at least 160 bits of base62")
            #expect(
                token.utf8.allSatisfy { c in
                    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                })
            seen.insert(token)
        }
        #expect(seen.count == 200)
    }

    @Test(arguments: [
        DeviceCredential.usernamePassword(username: "pump-1", password: "secret"),
        .certificateFingerprint("ab12"),
        .token(""),
    ])
    func otherCredentialsAreUnauthorized(_ credential: DeviceCredential) async throws {
        let credentials = InMemoryCredentialStore()
        try await credentials.addToken(
            digest: TokenAuthenticator.digest(""), for: pump, label: "empty", createdAt: 0)
        let auth = TokenAuthenticator(credentials: credentials)
        let error = await #expect(throws: IoTError.self) { try await auth.authenticate(credential) }
        #expect(error?.code == .unauthorized)
    }

    @Test func aFailingStoreIsNotReportedAsUnauthorized() async throws {
        let auth = TokenAuthenticator(credentials: FailingCredentialStore())
        let error = await #expect(throws: IoTError.self) { try await auth.authenticate(.token("abc")) }
        #expect(error?.code == .storage)
    }
}

/// A credential store whose lookups fail, as a broken disk would.
private struct FailingCredentialStore: CredentialStore {
    struct Broken: Error {}
    func addToken(digest: [UInt8], for device: DeviceIdentity, label: String, createdAt: Int64) async throws {
        throw Broken()
    }
    func identity(forTokenDigest digest: [UInt8]) async throws -> DeviceIdentity? { throw Broken() }
    func revokeToken(digest: [UInt8]) async throws -> Bool { throw Broken() }
    func revokeTokens(of device: DeviceIdentity) async throws -> Int { throw Broken() }
    func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] { throw Broken() }
}
