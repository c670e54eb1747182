public import IoTCore
import Synchronization

/// An ``IoTCore/IngestGateway`` that records what a transport submits and answers as told: a transport is
/// tested without a journal, stores or an authenticator.
///
/// By default every message and record submission is stored (receipts numbered from 1), a credential
/// resolves to the device ``defaultIdentity``, and a refusal is recorded and answered as refused. Set
/// ``answer`` to decide per submission.
///
/// ```swift
/// let gateway = RecordingGateway()
/// let tcp = TCPTransport(configuration: .init(port: 0), gateway: gateway)
/// // … connect, handshake, send a line …
/// #expect(gateway.submissions.count == 1)
/// gateway.answer = { _ in .refused(IoTError(.backpressure, "retry")) }   // the next one is refused
/// ```
public final class RecordingGateway: IngestGateway {
    private struct State {
        var submissions: [IngestSubmission] = []
        var authentications: [(DeviceCredential, AuthenticationSource)] = []
        var sequence: UInt64 = 0
        var answer: (@Sendable (IngestSubmission) -> IngestOutcome?)?
        var authenticate: (@Sendable (DeviceCredential) -> Result<DeviceIdentity, IoTError>)?
        var ready = true
    }
    private let state = Mutex(State())

    /// The identity a credential resolves to unless ``authenticator`` says otherwise.
    public let defaultIdentity: DeviceIdentity

    /// Creates a gateway that stores everything; credentials resolve to `identity`.
    public init(identity: DeviceIdentity = DeviceIdentity(tenant: "acme", deviceUID: "t-1")) {
        self.defaultIdentity = identity
    }

    /// Every submission so far, in order (refusals included).
    public var submissions: [IngestSubmission] { state.withLock { $0.submissions } }

    /// The messages submitted so far (message and foreign-format submissions), in order.
    public var messages: [InboundMessage] {
        submissions.compactMap {
            switch $0.content {
            case .message(let m, _), .foreignFormat(let m, _): m
            case .records, .refused: nil
            }
        }
    }

    /// The errors of the refusals submitted so far, in order.
    public var refusals: [IoTError] {
        submissions.compactMap {
            if case .refused(let e) = $0.content { return e }
            return nil
        }
    }

    /// Every credential checked by ``authenticate(_:source:)``, with its source.
    public var authentications: [(DeviceCredential, AuthenticationSource)] {
        state.withLock { $0.authentications }
    }

    /// Decides the outcome of each submission; `nil` (or a `nil` answer) stores it. Set it to refuse, to
    /// simulate back-pressure and the like.
    public var answer: (@Sendable (IngestSubmission) -> IngestOutcome?)? {
        get { state.withLock { $0.answer } }
        set { state.withLock { $0.answer = newValue } }
    }

    /// Resolves credentials; `nil` resolves every one to ``defaultIdentity``.
    public var authenticator: (@Sendable (DeviceCredential) -> Result<DeviceIdentity, IoTError>)? {
        get { state.withLock { $0.authenticate } }
        set { state.withLock { $0.authenticate = newValue } }
    }

    /// Whether ``isReady``; `true` unless set.
    public var ready: Bool {
        get { state.withLock { $0.ready } }
        set { state.withLock { $0.ready = newValue } }
    }

    // MARK: IngestGateway

    /// ``ready``.
    public var isReady: Bool { ready }

    /// Returns once ``ready`` is `true`.
    public func waitUntilReady() async throws {
        while !ready { try await Task.sleep(for: .milliseconds(5)) }
    }

    /// Records the credential and resolves it with ``authenticator``.
    public func authenticate(_ credential: DeviceCredential, source: AuthenticationSource) async
        -> Result<DeviceIdentity, IoTError>
    {
        resolve(credential, source)
    }

    /// Records the submission and answers it.
    public func submit(_ submission: IngestSubmission) async -> IngestOutcome {
        handle(submission)
    }

    /// Records the submissions and answers each, in order; never defers.
    public func submitBlocking(_ batch: [IngestSubmission], onCacheMiss: IngestCacheMiss) -> [IngestOutcome] {
        batch.map(handle)
    }

    private func resolve(_ credential: DeviceCredential, _ source: AuthenticationSource) -> Result<
        DeviceIdentity, IoTError
    > {
        let resolver = state.withLock { s in
            s.authentications.append((credential, source))
            return s.authenticate
        }
        return resolver?(credential) ?? .success(defaultIdentity)
    }

    private func handle(_ submission: IngestSubmission) -> IngestOutcome {
        let answer = state.withLock { s in
            s.submissions.append(submission)
            return s.answer
        }
        if case .refused(let error) = submission.content { return .refused(error) }
        if let decided = answer?(submission) { return decided }
        let identity: DeviceIdentity
        switch submission.sender {
        case .device(let device): identity = device
        case .credential(let credential, let address):
            switch resolve(credential, AuthenticationSource(transport: submission.transport, address: address)) {
            case .success(let device): identity = device
            case .failure(let error): return .refused(error)
            }
        case .unidentified: return .refused(IoTError(.unauthorized, "no device credential"))
        }
        if let claimed = submission.claimedDeviceUID, claimed != identity.deviceUID {
            return .refused(IoTError(.forbidden, "this credential belongs to another device than '\(claimed)'"))
        }
        let records: Int
        switch submission.content {
        case .records(let r, _): records = r.count
        case .message, .foreignFormat: records = 1
        case .refused: records = 0
        }
        let sequence = state.withLock { s in
            s.sequence += 1
            return s.sequence
        }
        return .stored(Receipt(sequence: sequence, records: records, points: records), identity)
    }
}
