import IoTCore
import IoTProtocols
import IoTTesting
import Synchronization
import Testing

@Suite("Device authentication (service)")
struct AuthServiceTests {
    static let pump = DeviceIdentity(tenant: "acme", deviceUID: "pump-1")
    static let here = AuthenticationSource(transport: "test", address: "10.0.0.1")

    static func service(
        clock: ManualClock = ManualClock(), limiterClock: (@Sendable () -> Int64)? = nil,
        failedAttempts: FailedAttemptLimiter.Configuration = .init(), sessions: DeviceSessions = DeviceSessions()
    ) -> DeviceAuthService {
        DeviceAuthService(
            credentials: InMemoryCredentialStore(), sessions: sessions,
            configuration: .init(
                sessionTokenLifetime: .milliseconds(60_000), passwordIterations: 1_000, failedAttempts: failedAttempts),
            clock: clock, limiterClock: limiterClock)
    }

    @Test("a password is hashed with PBKDF2 and verified; a wrong one is not")
    func passwordHashing() throws {
        let hasher = PasswordHasher(iterations: 1_000)
        let stored = try hasher.hash("correct horse")
        #expect(stored.hasPrefix("pbkdf2-sha256$1000$"))
        #expect(!stored.contains("correct horse"))
        #expect(hasher.verify("correct horse", against: stored))
        #expect(!hasher.verify("correct hors", against: stored))
        #expect(!hasher.verify("correct horse", against: "garbage"))
        #expect(try hasher.hash("correct horse") != stored, "a new salt per hash")
        #expect(throws: IoTError.self) { try PasswordHasher(iterations: 10).hash("x") }
    }

    @Test("username/password authenticates; the stored hash is not the password")
    func usernamePassword() async throws {
        let credentials = InMemoryCredentialStore()
        let auth = DeviceAuthService(credentials: credentials, configuration: .init(passwordIterations: 1_000))
        let issued = try await auth.addPassword(
            for: Self.pump, username: "pump", password: nil, label: "primary", now: 1)
        #expect(issued.password.count == 32, "a generated password")
        let stored = try await credentials.passwords(forUsername: "pump")
        #expect(stored.count == 1 && !stored[0].hash.contains(issued.password))
        #expect(
            try await auth.authenticate(.usernamePassword(username: "pump", password: issued.password)) == Self.pump)
        let wrong = await #expect(throws: IoTError.self) {
            try await auth.authenticate(.usernamePassword(username: "pump", password: "nope-nope"))
        }
        #expect(wrong?.code == .unauthorized)
        let unknown = await #expect(throws: IoTError.self) {
            try await auth.authenticate(.usernamePassword(username: "nobody", password: issued.password))
        }
        #expect(unknown?.code == .unauthorized)
        #expect(unknown?.message == wrong?.message, "an unknown username reads like a wrong password")
    }

    @Test("token exchange: a short-lived token works until it expires; refresh renews it")
    func exchangeExpiryRefresh() async throws {
        let clock = ManualClock(now: 1_000_000)
        let auth = Self.service(clock: clock)
        let issued = try await auth.addPassword(
            for: Self.pump, username: "pump", password: "pump-secret", label: "p", now: 0)
        let session = try await auth.exchange(username: "pump", password: issued.password, from: Self.here)
        #expect(session.expiresAt == 1_060_000)
        #expect(try await auth.authenticate(.token(session.token)) == Self.pump)

        clock.advance(byMillis: 50_000)
        let renewed = try await auth.refresh(session.token, from: Self.here)
        #expect(renewed.token != session.token && renewed.expiresAt == 1_110_000)

        clock.advance(byMillis: 10_001)  // the first token is now past its validity
        let expired = await #expect(throws: IoTError.self) { try await auth.authenticate(.token(session.token)) }
        #expect(expired?.code == .unauthorized && expired?.message.contains("expired") == true)
        #expect(try await auth.authenticate(.token(renewed.token)) == Self.pump, "the renewed one still works")
        let late = await #expect(throws: IoTError.self) { try await auth.refresh(session.token, from: Self.here) }
        #expect(late?.code == .unauthorized, "an expired token cannot be refreshed")

        let durable = try await auth.issueToken(for: Self.pump, label: "long", now: 0)
        await #expect(throws: IoTError.self, "only short-lived tokens are refreshed") {
            try await auth.refresh(durable, from: Self.here)
        }
        await #expect(throws: IoTError.self, "a wrong password gets no token") {
            try await auth.exchange(username: "pump", password: "wrong-password", from: Self.here)
        }
    }

    @Test("rotation keeps two valid passwords: the new one and the previous one")
    func rotation() async throws {
        let auth = Self.service()
        let first = try await auth.addPassword(
            for: Self.pump, username: "pump", password: "first-secret", label: "a", now: 1)
        let second = try await auth.rotatePassword(for: Self.pump, label: "b", now: 2)
        #expect(second.username == "pump" && second.password != first.password)
        #expect(try await auth.authenticate(.usernamePassword(username: "pump", password: first.password)) == Self.pump)
        #expect(
            try await auth.authenticate(.usernamePassword(username: "pump", password: second.password)) == Self.pump)
        let third = try await auth.rotatePassword(for: Self.pump, label: "c", now: 3)
        await #expect(throws: IoTError.self, "the oldest is gone after the next rotation") {
            try await auth.authenticate(.usernamePassword(username: "pump", password: first.password))
        }
        #expect(
            try await auth.authenticate(.usernamePassword(username: "pump", password: second.password)) == Self.pump)
        #expect(try await auth.authenticate(.usernamePassword(username: "pump", password: third.password)) == Self.pump)
        #expect(try await auth.credentials(of: Self.pump).passwords.map(\.label) == ["b", "c"])
        await #expect(throws: IoTError.self, "rotation needs an existing password") {
            try await auth.rotatePassword(for: DeviceIdentity(tenant: "acme", deviceUID: "other"), label: "x", now: 4)
        }
    }

    @Test("failed attempts are limited per source address and per username, and counted")
    func bruteForce() async throws {
        let now = Mutex<Int64>(0)
        let auth = Self.service(
            limiterClock: { now.withLock { $0 } },
            failedAttempts: .init(maxFailures: 3, window: .milliseconds(10_000), blockDuration: .milliseconds(5_000)))
        let issued = try await auth.addPassword(
            for: Self.pump, username: "pump", password: "pump-secret", label: "p", now: 0)
        let right = DeviceCredential.usernamePassword(username: "pump", password: issued.password)
        let wrong = DeviceCredential.usernamePassword(username: "pump", password: "guess-guess")
        for _ in 0..<3 {
            let e = await #expect(throws: IoTError.self) { try await auth.authenticate(wrong, from: Self.here) }
            #expect(e?.code == .unauthorized)
        }
        let blocked = await #expect(throws: IoTError.self, "even the right password is refused while blocked") {
            try await auth.authenticate(right, from: Self.here)
        }
        #expect(blocked?.code == .rateLimited && blocked?.retryAfterMillis == 5_000)
        // Issue 17: the username is limited too, so another address cannot go on guessing this account's
        // password; another account from another address is not blocked.
        let elsewhere = AuthenticationSource(transport: "test", address: "10.0.0.2")
        let sameUser = await #expect(throws: IoTError.self) { try await auth.authenticate(right, from: elsewhere) }
        #expect(sameUser?.code == .rateLimited && sameUser?.message.contains("username pump") == true)
        let valve = try await auth.addPassword(
            for: DeviceIdentity(tenant: "acme", deviceUID: "valve-1"), username: "valve", password: "valve-secret",
            label: "v",
            now: 0)
        #expect(
            try await auth.authenticate(.usernamePassword(username: "valve", password: valve.password), from: elsewhere)
                == DeviceIdentity(tenant: "acme", deviceUID: "valve-1"),
            "another account from another address is not blocked")
        #expect(auth.limiter.statistics.failures == 3)
        #expect(auth.limiter.statistics.blocked == 2)
        now.withLock { $0 = 5_001 }
        #expect(try await auth.authenticate(right, from: Self.here) == Self.pump, "the block ends")
    }

    /// Issue 17: one success cleared the address's failures, so a guesser could interleave its own valid login;
    /// and many addresses flushed the limiter's table, blocks included.
    @Test("a success does not reset other usernames' failures; a flood of addresses cannot flush the blocks")
    func limiterCannotBeReset() async throws {
        let now = Mutex<Int64>(0)
        let auth = Self.service(
            limiterClock: { now.withLock { $0 } },
            failedAttempts: .init(
                maxFailures: 3, window: .milliseconds(60_000), blockDuration: .milliseconds(60_000), maxAddresses: 50))
        let issued = try await auth.addPassword(
            for: Self.pump, username: "pump", password: "pump-secret", label: "p", now: 0)
        let mine = DeviceCredential.usernamePassword(username: "pump", password: issued.password)
        for _ in 0..<2 {
            await #expect(throws: IoTError.self) {
                try await auth.authenticate(.usernamePassword(username: "a", password: "guess"), from: Self.here)
            }
        }
        _ = try await auth.authenticate(mine, from: Self.here)  // a success of another username in between
        await #expect(throws: IoTError.self) {
            try await auth.authenticate(.usernamePassword(username: "b", password: "guess"), from: Self.here)
        }
        // Three failures from this address: it is blocked, the success in between notwithstanding.
        let blocked = await #expect(throws: IoTError.self) { try await auth.authenticate(mine, from: Self.here) }
        #expect(
            blocked?.code == .rateLimited && blocked?.message.contains("from 10.0.0.1") == true,
            "\(String(describing: blocked))")
        // 200 other addresses fail once each: the table (50 entries) evicts unblocked entries, never the block.
        for i in 0..<200 {
            let source = AuthenticationSource(transport: "test", address: "10.9.\(i / 250).\(i % 250)")
            await #expect(throws: IoTError.self) {
                try await auth.authenticate(.usernamePassword(username: "u\(i)", password: "x"), from: source)
            }
        }
        let still = await #expect(throws: IoTError.self) { try await auth.authenticate(mine, from: Self.here) }
        #expect(still?.code == .rateLimited, "the block survives the flood")
    }

    @Test("revocation closes live sessions and refuses the credentials")
    func revocation() async throws {
        let sessions = DeviceSessions()
        let auth = Self.service(sessions: sessions)
        let token = try await auth.issueToken(for: Self.pump, label: "t", now: 0)
        let closed = Mutex(0)
        let other = DeviceIdentity(tenant: "acme", deviceUID: "valve-1")
        _ = sessions.register(Self.pump, transport: "test", send: nil, close: { closed.withLock { $0 += 1 } })
        _ = sessions.register(other, transport: "test", send: nil, close: { Issue.record("another device was closed") })
        #expect(try await auth.revokeAll(of: Self.pump) == 1)
        #expect(closed.withLock { $0 } == 1)
        #expect(sessions.sessions(of: Self.pump).isEmpty && sessions.sessions(of: other).count == 1)
        await #expect(throws: IoTError.self) { try await auth.authenticate(.token(token)) }
    }

    @Test("credential store conformance (in memory)", arguments: CredentialStoreConformance.checks)
    func conformance(_ check: ConformanceCheck<any CredentialStore>) async throws {
        try await check.run(InMemoryCredentialStore())
    }

    /// Issue 17, item 5: PBKDF2 runs on a small pool of its own; a full queue refuses at once with a retry
    /// delay instead of piling up work (HTTP answers it 503 + Retry-After).
    @Test("password checks beyond the hashing queue are refused at once with a retry delay")
    func hashingQueueIsBounded() async throws {
        let auth = DeviceAuthService(
            credentials: InMemoryCredentialStore(),
            configuration: .init(passwordIterations: 300_000, hashingThreads: 1, hashingQueueCapacity: 2))
        let issued = try await auth.addPassword(
            for: Self.pump, username: "pump", password: "pump-secret", label: "p", now: 0)
        let outcomes = await withTaskGroup(of: IoTError.Code?.self) { group in
            for i in 0..<12 {
                group.addTask {
                    let password = i == 0 ? issued.password : "guess-\(i)"
                    do throws(IoTError) {
                        _ = try await auth.authenticate(.usernamePassword(username: "pump", password: password))
                        return nil
                    } catch {
                        if error.code == .unavailable { #expect(error.retryAfterMillis == 1_000) }
                        return error.code
                    }
                }
            }
            var all: [IoTError.Code?] = []
            for await o in group { all.append(o) }
            return all
        }
        let refused = outcomes.filter { $0 == IoTError.Code.unavailable }.count
        let checked = outcomes.filter { $0 == IoTError.Code.unauthorized || $0 == nil }.count
        // One running and two waiting at most: 3 of the 12 are checked, the others refused without PBKDF2.
        #expect(checked >= 3 && checked <= 6 && refused == 12 - checked, "\(outcomes)")
        // Once the queue drains, checks are taken again.
        _ = try await auth.authenticate(.usernamePassword(username: "pump", password: issued.password))
    }

    /// Issue 17, item 5: the EMQX endpoint passed no client address, so it was never limited.
    @Test("EMQX authentication counts failures against the broker's peerhost and the username")
    func emqxIsLimited() async throws {
        let auth = Self.service(
            failedAttempts: .init(maxFailures: 3, window: .milliseconds(60_000), blockDuration: .milliseconds(60_000)))
        let registry = InMemoryRegistryStore()
        try await registry.saveTenant(Tenant(id: "acme"))
        try await registry.saveProduct(.tenant("acme"), Product(id: "p"))
        try await registry.saveDevice(.tenant("acme"), Device(uid: "pump-1", product: "p"))
        try await registry.saveDevice(.tenant("acme"), Device(uid: "valve-1", product: "p"))
        let pump = try await auth.addPassword(
            for: Self.pump, username: "pump-1", password: "pump-secret", label: "p", now: 0)
        let valve = try await auth.addPassword(
            for: DeviceIdentity(tenant: "acme", deviceUID: "valve-1"), username: "valve-1", password: "valve-secret",
            label: "v", now: 0)
        let access = BrokerAccessControl(authenticator: auth, registry: registry, hasCredentials: nil)
        for _ in 0..<3 {
            let d = try await access.authenticate(
                username: "pump-1", password: "guess", clientID: "c", peerHost: "10.7.7.7")
            #expect(d.result == .deny)
        }
        let blocked = try await access.authenticate(
            username: "pump-1", password: pump.password, clientID: "c", peerHost: "10.7.7.7")
        #expect(blocked.result == .deny && blocked.reason.contains("too many"), "\(blocked)")
        let other = try await access.authenticate(
            username: "valve-1", password: valve.password, clientID: "c", peerHost: "10.8.8.8")
        #expect(other.result == .allow, "\(other)")
        #expect(auth.limiter.statistics.failures == 3)
    }
}
