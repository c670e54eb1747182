public import Logging

/// The ``IngestGateway`` over an ``Ingestor`` and a ``DeviceAuthenticator``: what every built-in transport
/// submits to.
///
/// It authenticates a credential (a success is remembered under the authenticator's
/// ``DeviceAuthenticator/cacheKey(for:)`` for ``Configuration/authenticationCacheLifetime``, or for as long as
/// its ``DeviceAuthenticator/credentialsRevision()`` stays the same), checks the device a request claims,
/// picks the parser (the product's, else the transport's), and hands the message to the ingestor, which
/// applies the rate limit, a gateway device's rights over its children and back-pressure, and journals it.
/// Every submission ends in one counter of ``Ingestor/statistics``.
///
/// ```swift
/// let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry)
/// let gateway = DefaultIngestGateway(ingestor: ingestor, authenticator: TokenAuthenticator(store: credentials))
/// let http = HTTPIngestTransport(configuration: .init(port: 8080), gateway: gateway)
/// let group = ServiceGroup(services: [ingestor, http], gracefulShutdownSignals: [.sigterm], logger: logger)
/// ```
///
/// One gateway serves every transport of a process (they share its credential cache); the ingestor runs
/// as a `Service` of its own.
public final class DefaultIngestGateway: IngestGateway {
    /// The credential cache.
    public struct Configuration: Sendable {
        /// How long a successful credential lookup is reused; `0` looks every credential up. A
        /// revoked credential keeps working for at most this long, so it is at most 1 000 (the
        /// ``DeviceAuthenticator`` contract: revocation within a second). Default 1 000 ms. With an
        /// authenticator that keeps a ``DeviceAuthenticator/credentialsRevision()``, a lookup is reused for
        /// as long as the revision, read about twice per lifetime, stays the same.
        public var authenticationCacheLifetime: Duration
        /// Credentials remembered at most; when full, those no longer usable are dropped, and if none, all.
        /// 1–10 000 000, default 100 000.
        public var authenticationCacheCapacity: Int

        /// Creates a configuration with the documented defaults.
        public init(authenticationCacheLifetime: Duration = .seconds(1), authenticationCacheCapacity: Int = 100_000) {
            self.authenticationCacheLifetime = authenticationCacheLifetime
            self.authenticationCacheCapacity = authenticationCacheCapacity
        }

        /// Checks the ranges above.
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the setting and its range.
        public func validate() throws(IoTError) {
            guard (0...1_000).contains(authenticationCacheLifetime.inMilliseconds) else {
                throw IoTError(
                    .invalidArgument,
                    "authenticationCacheMillis must be 0 (off) to 1000 (revocation takes effect within a second), got \(authenticationCacheLifetime.inMilliseconds)"
                )
            }
            guard (1...10_000_000).contains(authenticationCacheCapacity) else {
                throw IoTError(
                    .invalidArgument,
                    "authenticationCacheCapacity must be 1 to 10000000, got \(authenticationCacheCapacity)")
            }
        }
    }

    /// The pipeline behind the gateway.
    public let ingestor: Ingestor
    private let receiptTimers = TransportTimers(label: "iot_ingest_receipt_seconds")
    /// Resolves credentials; `nil` refuses every credential (transports that submit
    /// ``IngestSubmission/Sender/device(_:)`` only need none).
    public let authenticator: (any DeviceAuthenticator)?
    /// The configuration in force.
    public let configuration: Configuration
    let cache: AuthenticationCache?
    let logger: Logger

    /// Creates the gateway.
    ///
    /// - Parameters:
    ///   - ingestor: the pipeline; run it as a `Service` of its own.
    ///   - authenticator: resolves the credentials transports present.
    ///   - configuration: the credential cache (validate it first: out-of-range values are clamped).
    public convenience init(
        ingestor: Ingestor, authenticator: (any DeviceAuthenticator)? = nil, configuration: Configuration = .init(),
        logger: Logger = Logger(label: "iot.ingest.gateway")
    ) {
        self.init(
            ingestor: ingestor, authenticator: authenticator, configuration: configuration, cacheClock: nil,
            logger: logger)
    }

    /// A gateway over `ingestor` that asks `authenticator` for every credential (no cache, so a revocation
    /// takes effect on the next message): what a transport made from an ingestor and an authenticator alone
    /// submits to.
    public static func uncached(_ ingestor: Ingestor, authenticator: any DeviceAuthenticator) -> DefaultIngestGateway {
        DefaultIngestGateway(
            ingestor: ingestor, authenticator: authenticator, configuration: .init(authenticationCacheLifetime: .zero))
    }

    /// ``init(ingestor:authenticator:configuration:logger:)`` with the cache's clock (monotonic
    /// nanoseconds), for tests.
    package init(
        ingestor: Ingestor, authenticator: (any DeviceAuthenticator)?, configuration: Configuration,
        cacheClock: (@Sendable () -> Int64)?, logger: Logger
    ) {
        self.ingestor = ingestor
        self.authenticator = authenticator
        self.configuration = configuration
        let ttl = min(max(configuration.authenticationCacheLifetime.inMilliseconds, 0), 1_000)
        self.cache =
            ttl > 0 && authenticator != nil
            ? AuthenticationCache(
                ttlMillis: ttl, capacity: min(max(configuration.authenticationCacheCapacity, 1), 10_000_000),
                clock: cacheClock,
                revision: { [authenticator] in try? await authenticator?.credentialsRevision() ?? nil })
            : nil
        self.logger = logger
    }

    /// Whether the ingestor has replayed its journal and accepts messages.
    public var isReady: Bool { ingestor.isReady }

    /// Waits until the ingestor accepts messages.
    public func waitUntilReady() async throws { try await ingestor.waitUntilReady() }

    /// Credentials remembered now (for tests).
    package var cachedCredentials: Int { cache?.count ?? 0 }

    // MARK: Authentication

    /// Resolves `credential` (its cache first); a refusal is counted as one rejected message.
    public func authenticate(_ credential: DeviceCredential, source: AuthenticationSource) async
        -> Result<DeviceIdentity, IoTError>
    {
        let key = authenticator?.cacheKey(for: credential)
        if let key, let cached = cache?.identity(for: key) { return .success(cached) }
        guard let authenticator else {
            let error = IoTError(
                .unauthorized, "this listener takes no device credentials; the platform has no authenticator")
            count(error, source.transport)
            return .failure(error)
        }
        let started = cache?.now() ?? 0
        do {
            let identity = try await authenticator.authenticate(credential, source: source)
            if let key { cache?.remember(identity, for: key, lookedUpAt: started) }
            return .success(identity)
        } catch {
            if error.code != .unauthorized && error.code != .rateLimited {
                logger.error(
                    "device authentication failed", metadata: ["error": "\(error)", "transport": "\(source.transport)"])
            }
            count(error, source.transport)
            return .failure(error)
        }
    }

    /// The cached identity of a sender, or `nil` when it must be looked up.
    private func cachedIdentity(_ sender: IngestSubmission.Sender) -> DeviceIdentity? {
        switch sender {
        case .device(let identity): identity
        case .credential(let credential, _):
            authenticator?.cacheKey(for: credential).flatMap { cache?.identity(for: $0) }
        case .unidentified: nil
        }
    }

    // MARK: Submitting

    /// Authenticates, checks the claimed device, parses, resolves and journals one submission.
    ///
    /// The time from the call to a journal receipt is the histogram `iot_ingest_receipt_seconds{transport}`.
    public func submit(_ submission: IngestSubmission) async -> IngestOutcome {
        let started = ContinuousClock.now
        let outcome = await submitUntimed(submission)
        if case .stored = outcome { receiptTimers.record(submission.transport, since: started, count: 1) }
        return outcome
    }

    private func submitUntimed(_ submission: IngestSubmission) async -> IngestOutcome {
        let transport = submission.transport
        if case .refused(let error) = submission.content {
            count(error, transport)
            return .refused(error)
        }
        let identity: DeviceIdentity
        switch submission.sender {
        case .device(let device): identity = device
        case .credential(let credential, let address):
            switch await authenticate(credential, source: AuthenticationSource(transport: transport, address: address))
            {
            case .success(let device): identity = device
            case .failure(let error): return .refused(error)
            }
        case .unidentified:
            let error = IoTError(.unauthorized, "no device credential; present the device's access token")
            count(error, transport)
            return .refused(error)
        }
        if let refusal = claimRefusal(submission, identity) { return .refused(refusal) }
        do {
            switch submission.content {
            case .message(let message, let parser):
                return .stored(try await ingestor.ingest(message, parser: parser, identity: identity), identity)
            case .foreignFormat(let message, let refusal):
                // Only a product that names its parser reads what the transport does not; the ingestor then
                // uses that parser whatever it is handed.
                let named: String?
                do {
                    named = try await ingestor.productParserName(for: identity)
                } catch {
                    count(error, transport)  // the ingestor has not seen the message
                    return .refused(error)
                }
                guard named != nil else {
                    count(refusal, transport)
                    return .unsupportedFormat(refusal)
                }
                return .stored(try await ingestor.ingest(message, parser: JSONParser(), identity: identity), identity)
            case .records(let records, let receivedAt):
                return .stored(
                    try await ingestor.ingest(
                        records, transport: transport, receivedAt: receivedAt, identity: identity),
                    identity)
            case .refused(let error):
                return .refused(error)  // counted above
            }
        } catch {
            return .refused(error)  // the ingestor counted it
        }
    }

    /// ``submit(_:)`` for a burst from a C library's thread; see ``IngestGateway/submitBlocking(_:onCacheMiss:)``.
    ///
    /// Each message journaled counts the batch's time in `iot_ingest_receipt_seconds{transport}`.
    public func submitBlocking(_ batch: [IngestSubmission], onCacheMiss: IngestCacheMiss) -> [IngestOutcome] {
        let started = ContinuousClock.now
        let outcomes = submitBlockingUntimed(batch, onCacheMiss: onCacheMiss)
        var stored = 0
        for o in outcomes { if case .stored = o { stored += 1 } }
        if stored > 0 { receiptTimers.record(batch[0].transport, since: started, count: stored) }
        return outcomes
    }

    private func submitBlockingUntimed(_ batch: [IngestSubmission], onCacheMiss: IngestCacheMiss) -> [IngestOutcome] {
        // One submission (CoAP, a Modbus poll, most MQTT loop turns): no batch bookkeeping.
        if batch.count == 1 {
            switch step(batch[0], onCacheMiss) {
            case .answered(let outcome): return [outcome]
            case .journal(let item): return [Self.outcome(ingestor.ingestBlocking([item])[0], item.identity)]
            case .alone: return [waitFor(batch[0])]
            }
        }
        var outcomes = [IngestOutcome](repeating: .deferred, count: batch.count)
        // Messages of known senders go to the ingestor together (one journal write for the cached ones).
        var run: [Ingestor.BlockingItem] = []
        var runIndices: [Int] = []
        run.reserveCapacity(batch.count)
        runIndices.reserveCapacity(batch.count)
        func flush() {
            guard !run.isEmpty else { return }
            for (k, result) in ingestor.ingestBlocking(run).enumerated() {
                outcomes[runIndices[k]] = Self.outcome(result, run[k].identity)
            }
            run.removeAll(keepingCapacity: true)
            runIndices.removeAll(keepingCapacity: true)
        }
        for (i, submission) in batch.enumerated() {
            switch step(submission, onCacheMiss) {
            case .answered(let outcome): outcomes[i] = outcome
            case .journal(let item):
                run.append(item)
                runIndices.append(i)
            case .alone:
                flush()  // keeps journal order
                outcomes[i] = waitFor(submission)
            }
        }
        flush()
        return outcomes
    }

    /// What ``submitBlocking(_:onCacheMiss:)`` does with one submission.
    private enum BlockingStep {
        /// Answered on the calling thread (refused, deferred, or ingested from the ingestor's caches).
        case answered(IngestOutcome)
        /// To journal with the other messages of known senders of the batch.
        case journal(Ingestor.BlockingItem)
        /// To run through ``submit(_:)`` on a task while the calling thread waits (after the batch so far).
        case alone
    }

    private func step(_ submission: IngestSubmission, _ onCacheMiss: IngestCacheMiss) -> BlockingStep {
        if case .refused(let error) = submission.content {
            count(error, submission.transport)
            return .answered(.refused(error))
        }
        guard let identity = cachedIdentity(submission.sender) else {
            return onCacheMiss == .wait ? .alone : .answered(.deferred)
        }
        if let refusal = claimRefusal(submission, identity) { return .answered(.refused(refusal)) }
        switch (submission.content, onCacheMiss) {
        case (.message(let message, let parser), .wait):
            return .journal(Ingestor.BlockingItem(message, parser: parser, identity: identity))
        case (.records(let records, let receivedAt), .wait):
            return .journal(
                Ingestor.BlockingItem(
                    records: records, transport: submission.transport, receivedAt: receivedAt, identity: identity))
        case (.message(let message, let parser), .deferToAsync):
            do {
                guard let receipt = try ingestor.ingestIfCached(message, parser: parser, identity: identity) else {
                    return .answered(.deferred)
                }
                return .answered(.stored(receipt, identity))
            } catch {
                return .answered(.refused(error))  // counted by the ingestor
            }
        case (.foreignFormat, .wait):
            return .alone  // the product's parser decides: the registry may be asked
        case (.foreignFormat, .deferToAsync), (.records, .deferToAsync):
            return .answered(.deferred)
        case (.refused(let error), _):
            return .answered(.refused(error))  // not reached: answered above
        }
    }

    private static func outcome(_ result: Result<Receipt, IoTError>, _ identity: DeviceIdentity) -> IngestOutcome {
        switch result {
        case .success(let receipt): .stored(receipt, identity)
        case .failure(let error): .refused(error)
        }
    }

    /// Runs ``submit(_:)`` on a task and blocks the calling thread (not one of the pool's) until it ends.
    private func waitFor(_ submission: IngestSubmission) -> IngestOutcome {
        do throws(IoTError) {
            return try blockingOnTask { () async throws(IoTError) in await self.submit(submission) }
        } catch {
            return .refused(error)  // not reached: submit(_:) answers every refusal as an outcome
        }
    }

    // MARK: Accounting

    /// The refusal of a submission whose sender is not the device it claims, counted; `nil` when it is.
    private func claimRefusal(_ submission: IngestSubmission, _ identity: DeviceIdentity) -> IoTError? {
        guard let claimed = submission.claimedDeviceUID, claimed != identity.deviceUID else { return nil }
        let error = IoTError(
            .forbidden,
            "this credential belongs to another device than '\(claimed)'; send with the credential of the device you name"
        )
        count(error, submission.transport)
        return error
    }

    /// Counts a submission the ingestor never saw: received, then rejected for the error's code.
    private func count(_ error: IoTError, _ transport: String) {
        ingestor.accounting.received(transport)
        ingestor.accounting.rejected(transport, error.code.name)
    }
}

extension DefaultIngestGateway.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case authenticationCacheMillis, authenticationCacheCapacity }

    /// Reads `authenticationCacheMillis` and `authenticationCacheCapacity`; a missing key keeps its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            authenticationCacheLifetime: try c.decodeMillis(
                .authenticationCacheMillis, or: d.authenticationCacheLifetime),
            authenticationCacheCapacity: try c.decode(.authenticationCacheCapacity, or: d.authenticationCacheCapacity))
    }
}
