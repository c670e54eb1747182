import Foundation
import IoTCore
import IoTTesting
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Resolves `token:<uid>` tokens of tenant `acme` and counts its lookups.
final class CountingAuthenticator: DeviceAuthenticator {
    let lookups = Mutex(0)
    let revoked = Mutex<Set<String>>([])

    func authenticate(_ credential: DeviceCredential) async throws(IoTError) -> DeviceIdentity {
        lookups.withLock { $0 += 1 }
        guard case .token(let token) = credential, token.hasPrefix("token:"),
            !revoked.withLock({ $0.contains(token) })
        else { throw IoTError(.unauthorized, "unknown token") }
        return DeviceIdentity(tenant: IngestHarness.tenant, deviceUID: String(token.dropFirst(6)))
    }
}

/// The front door: one place for credential → identity, the claimed device, the parser and the counter
/// every submission ends in.
@Suite struct IngestGatewayTests {
    let json = JSONParser()

    func message(_ text: String, contentType: String? = nil) -> InboundMessage {
        InboundMessage(transport: "test", contentType: contentType, text: text)
    }

    @Test func aCredentialIsCheckedOnceWithinTheCacheAndEverySubmissionIsCounted() async throws {
        let auth = CountingAuthenticator()
        let now = Mutex<Int64>(0)
        let h = try await IngestHarness()
        let gateway = DefaultIngestGateway(
            ingestor: h.ingestor, authenticator: auth,
            configuration: .init(authenticationCacheLifetime: .milliseconds(1_000)),
            cacheClock: { now.withLock { $0 } }, logger: Logger(label: "test"))
        let sender = IngestSubmission.Sender.credential(.token("token:t-1"), address: "127.0.0.1")
        for i in 0..<3 {
            let outcome = await gateway.submit(.message(message(#"{"temp": \#(i)}"#), parser: json, from: sender))
            guard case .stored(_, let identity) = outcome else {
                Issue.record("not stored: \(outcome)")
                return
            }
            #expect(identity == DeviceIdentity(tenant: IngestHarness.tenant, deviceUID: "t-1"))
        }
        #expect(auth.lookups.withLock { $0 } == 1, "one lookup within the cache's second")
        auth.revoked.withLock { _ = $0.insert("token:t-1") }
        now.withLock { $0 = 1_000_000_000 }  // the cached lookup has expired
        let revoked = await gateway.submit(.message(message(#"{"temp": 9}"#), parser: json, from: sender))
        #expect(revoked.error?.code == .unauthorized)
        // A failure is never cached: the next try asks again.
        _ = await gateway.submit(.message(message(#"{"temp": 9}"#), parser: json, from: sender))
        #expect(auth.lookups.withLock { $0 } == 3)
        try await h.drain()
        let s = h.ingestor.statistics
        #expect(s.received == 5 && s.stored == 3 && s.rejected == ["unauthorized": 2] && s.isBalanced, "\(s)")
        await h.stop()
    }

    @Test func aClaimedDeviceMustBeTheSender() async throws {
        let h = try await IngestHarness(authenticator: CountingAuthenticator())
        let sender = IngestSubmission.Sender.credential(.token("token:t-1"), address: "")
        let other = await h.gateway.submit(
            .message(message(#"{"temp": 1}"#), parser: json, from: sender, claiming: "d-1"))
        #expect(other.error?.code == .forbidden)
        let own = await h.gateway.submit(
            .message(message(#"{"temp": 1}"#), parser: json, from: sender, claiming: "t-1"))
        #expect(own.receipt != nil, "\(own)")
        let nobody = await h.gateway.submit(.message(message(#"{"temp": 1}"#), parser: json, from: .unidentified))
        #expect(nobody.error?.code == .unauthorized)
        try await h.drain()
        let s = h.ingestor.statistics
        #expect(s.stored == 1 && s.rejected == ["forbidden": 1, "unauthorized": 1] && s.isBalanced, "\(s)")
        await h.stop()
    }

    @Test func aForeignFormatIsReadOnlyByTheProductsParser() async throws {
        let registry = InMemoryRegistryStore()
        try await registry.saveTenant(Tenant(id: "acme"))
        try await registry.saveProduct(
            .tenant("acme"), Product(id: "csv", signals: [Signal(name: "temp")], parser: "semicolon"))
        try await registry.saveProduct(.tenant("acme"), Product(id: "plain", signals: [Signal(name: "temp")]))
        try await registry.saveDevice(.tenant("acme"), Device(uid: "c-1", product: "csv"))
        try await registry.saveDevice(.tenant("acme"), Device(uid: "p-1", product: "plain"))
        let parsers = ParserRegistry()
        parsers.register(SemicolonParser())
        let points = InMemoryPointStore()
        let ingestor = Ingestor(journal: InMemoryJournal(), pointStore: points, registry: registry, parsers: parsers)
        let gateway = DefaultIngestGateway(ingestor: ingestor)
        let task = Task { try await ingestor.run() }
        try await gateway.waitUntilReady()
        let refusal = IoTError(.malformedPayload, "text/csv is not read here")
        func send(_ uid: String) async -> IngestOutcome {
            await gateway.submit(
                .foreignFormat(
                    message("21.5", contentType: "text/csv"), refusal: refusal,
                    from: .device(DeviceIdentity(tenant: "acme", deviceUID: uid))))
        }
        let read = await send("c-1")
        #expect(read.receipt != nil, "the product's parser reads it: \(read)")
        guard case .unsupportedFormat(let error) = await send("p-1") else {
            Issue.record("a product without a parser read text/csv")
            return
        }
        #expect(error.message == refusal.message)
        let s = ingestor.statistics
        #expect(s.received == 2 && s.rejected == ["malformed_payload": 1] && s.isBalanced, "\(s)")
        task.cancel()
        _ = try? await task.value
    }

    @Test func aRefusalIsOnlyCountedAndNeverWaits() async throws {
        let h = try await IngestHarness()
        let error = IoTError(.payloadTooLarge, "frame too large")
        let outcomes = h.gateway.submitBlocking(
            [.refused(error, transport: "test"), .refused(error, transport: "test")], onCacheMiss: .deferToAsync)
        #expect(outcomes.allSatisfy { $0.error?.code == .payloadTooLarge })
        let s = h.ingestor.statistics
        #expect(s.received == 2 && s.rejected == ["payload_too_large": 2] && s.isBalanced, "\(s)")
        await h.stop()
    }

    /// An I/O loop that must never wait gets `deferred` (nothing counted) until the credential and the
    /// device are cached; then the same submission is stored on the calling thread.
    @Test func aDeferringBatchHandsBackWhatIsNotCached() async throws {
        let h = try await IngestHarness(authenticator: CountingAuthenticator())
        let gateway = h.gateway
        let submission = IngestSubmission.message(
            message(#"{"temp": 1}"#), parser: json, from: .credential(.token("token:d-2"), address: ""))
        let first = gateway.submitBlocking([submission], onCacheMiss: .deferToAsync)[0]
        guard case .deferred = first else {
            Issue.record("an uncached credential was handled on the calling thread: \(first)")
            return
        }
        #expect(h.ingestor.statistics.received == 0, "a deferred submission is not counted")
        #expect(await gateway.submit(submission).receipt != nil)
        let again = await withCheckedContinuation { (c: CheckedContinuation<IngestOutcome, Never>) in
            Thread { c.resume(returning: gateway.submitBlocking([submission], onCacheMiss: .deferToAsync)[0]) }.start()
        }
        #expect(again.receipt != nil, "cached now: stored on the calling thread (\(again))")
        try await h.drain()
        #expect(h.ingestor.statistics.stored == 2 && h.ingestor.statistics.isBalanced, "\(h.ingestor.statistics)")
        await h.stop()
    }

    @Test func theCacheSettingsAreValidated() {
        #expect(throws: IoTError.self) {
            try DefaultIngestGateway.Configuration(authenticationCacheLifetime: .milliseconds(1_001)).validate()
        }
        #expect(throws: IoTError.self) {
            try DefaultIngestGateway.Configuration(authenticationCacheCapacity: 0).validate()
        }
        #expect(throws: Never.self) {
            try DefaultIngestGateway.Configuration(authenticationCacheLifetime: .milliseconds(0)).validate()
        }
    }
}

/// A transport tested against `RecordingGateway`: no journal, stores or authenticator.
@Suite struct RecordingGatewayTests {
    final class LineDevice: StreamTransport, @unchecked Sendable {
        let descriptor: Int32
        init(descriptor: Int32, gateway: any IngestGateway) {
            self.descriptor = descriptor
            super.init(
                name: "line", identity: DeviceIdentity(tenant: "acme", deviceUID: "t-1"), parser: JSONParser(),
                configuration: .init(maxFrameBytes: 16, backpressureRetryLimit: .milliseconds(0)), gateway: gateway,
                logger: Logger(label: "line"))
        }
        override func connect() async throws -> any ByteStream { FileDescriptorStream(descriptor: descriptor) }
        override func acknowledgement(for result: Result<Receipt, IoTError>) -> [UInt8]? {
            switch result {
            case .success(let r): Array("OK \(r.sequence)\n".utf8)
            case .failure(let e): Array("ERR \(e.code.name)\n".utf8)
            }
        }
    }

    @Test func aStreamTransportSubmitsEachFrameAndAnswersWhatTheGatewaySays() async throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let gateway = RecordingGateway()
        let device = LineDevice(descriptor: fds[0], gateway: gateway)
        let task = Task { try await device.run() }
        let peer = FileDescriptorStream(descriptor: fds[1])
        func exchange(_ line: String) async throws -> String {
            try await peer.write(Array(line.utf8))
            var received = ""
            while !received.hasSuffix("\n"), let chunk = try await peer.read() {
                received += String(decoding: chunk, as: UTF8.self)
            }
            return received
        }
        #expect(try await exchange("{\"temp\":1}\n") == "OK 1\n")
        #expect(try await exchange("{\"temp\":2, \"hum\": 40}\n") == "ERR payload_too_large\n", "over 16 bytes")
        gateway.answer = { _ in .refused(IoTError(.unknownSignal, "no such signal")) }
        #expect(try await exchange("{\"x\":3}\n") == "ERR unknown_signal\n")
        #expect(gateway.messages.map { String(decoding: $0.payload, as: UTF8.self) } == [#"{"temp":1}"#, #"{"x":3}"#])
        #expect(gateway.refusals.map(\.code) == [.payloadTooLarge])
        #expect(
            gateway.submissions.allSatisfy {
                if case .device(let d) = $0.sender { return d.deviceUID == "t-1" }
                return false
            })
        task.cancel()
        await peer.close()
        _ = try? await task.value
    }
}
