import CIoTCoAP
public import IoTCore
import IoTIO
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The platform as a CoAP client that observes resources on devices (RFC 7641): create, remove, list and
/// monitor observations at run time, as ``MQTTClientManager`` does for MQTT clients.
///
/// Every notification is journaled through the ``IoTCore/Ingestor`` (JSON, or SenML for Content-Format 110)
/// before libcoap acknowledges it, so an acknowledged notification is never lost. An observation that has
/// heard nothing for ``Configuration/reregisterAfter`` (the device restarted, a notification was lost)
/// is registered again with a fresh token. All observations share one libcoap context on one I/O thread.
///
/// ```swift
/// let observers = CoAPObserverManager(ingestor: ingestor, logger: logger)   // a Service: add it to the group
/// _ = try observers.create(CoAPObservationSpec(
///     id: "boiler-temp", uri: "coap://10.0.0.7:5683/sensors/temp", tenant: "acme", deviceUID: "boiler-1"))
/// let reports = observers.list()
/// try observers.remove(id: "boiler-temp")
/// ```
public final class CoAPObserverManager: Service, Sendable {
    /// Limits and timings.
    public struct Configuration: Sendable {
        /// Re-register an observation that has been silent this long. Default 60 000 ms.
        public var reregisterAfter: Duration
        /// Observations at most. Default 1 000.
        public var maxObservations: Int
        /// Which devices an observation created through the management API (``checkDestination(_:)``) may
        /// target: a loopback, private or link-local address needs an entry of the allow-list. Default: public
        /// addresses only.
        public var outbound: OutboundPolicy

        /// Creates a configuration with the documented defaults.
        public init(
            reregisterAfter: Duration = .seconds(60), maxObservations: Int = 1_000,
            outbound: OutboundPolicy = OutboundPolicy()
        ) {
            self.reregisterAfter = reregisterAfter
            self.maxObservations = maxObservations
            self.outbound = outbound
        }

        /// Checks `maxObservations` (1 to 1,000,000) and `reregisterAfterMillis` (1 s to 10 years).
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            try IoTLimits.checkSetting(maxObservations, "maxObservations", in: 1...1_000_000)
            try IoTLimits.checkSetting(
                reregisterAfter.inMilliseconds, "reregisterAfterMillis", in: 1_000...IoTLimits.maxDurationMillis,
                unit: "ms")
        }
    }

    /// One observation as the manager reports it (``IoTCore/CoAPObservationReport``).
    public typealias Report = CoAPObservationReport

    private enum Command {
        case start(CoAPObservationSpec, host: String, port: Int, path: [String])
        case stop(String)
    }

    private struct Shared {
        var reports: [String: Report] = [:]
        var commands: [Command] = []
        var stopping = false
    }

    /// The configuration in force.
    public let configuration: Configuration
    let gateway: any IngestGateway
    let logger: Logger
    private let shared = Mutex(Shared())
    /// A non-blocking pipe that wakes the I/O thread's `poll`.
    private let wakeFD: (read: Int32, write: Int32)
    private let jsonParser = JSONParser()
    private let senmlParser = SenMLParser()

    /// A manager whose notifications go to a ``IoTCore/DefaultIngestGateway`` over `ingestor`.
    public convenience init(
        configuration: Configuration = .init(), ingestor: Ingestor, logger: Logger = Logger(label: "iot.coap.observe")
    ) {
        self.init(configuration: configuration, gateway: DefaultIngestGateway(ingestor: ingestor), logger: logger)
    }

    /// Creates a manager; observations start once ``run()`` runs.
    ///
    /// - Parameter gateway: where notifications go, as the observed device's.
    public init(
        configuration: Configuration = .init(), gateway: any IngestGateway,
        logger: Logger = Logger(label: "iot.coap.observe")
    ) {
        self.configuration = configuration
        self.gateway = gateway
        self.logger = logger
        self.wakeFD = makeWakePipe()
    }

    deinit {
        Glibc.close(wakeFD.read)
        Glibc.close(wakeFD.write)
    }

    /// Checks that ``Configuration/outbound`` allows the observation's device address; the management API
    /// calls it before ``create(_:)`` (observations created in code are not checked).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/forbidden`` for a loopback, private or link-local address that the
    ///   allow-list does not name; ``IoTCore/IoTError/Code/invalidArgument`` for an invalid uri.
    public func checkDestination(_ spec: CoAPObservationSpec) throws(IoTError) {
        try configuration.outbound.check(host: try spec.target().host, what: "CoAP device")
    }

    /// Starts observing.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid spec,
    ///   ``IoTCore/IoTError/Code/conflict`` when the id exists or ``Configuration/maxObservations`` is reached.
    @discardableResult
    public func create(_ spec: CoAPObservationSpec) throws(IoTError) -> Report {
        let target = try spec.target()
        let report = Report(
            spec: spec, state: "registering", registrations: 0, notifications: 0, stored: 0, rejected: 0, lastError: nil
        )
        try shared.withLock { s throws(IoTError) in
            guard s.reports[spec.id] == nil else {
                throw IoTError(.conflict, "observation \"\(spec.id)\" exists; remove it first or pick another id")
            }
            guard s.reports.count < configuration.maxObservations else {
                throw IoTError(
                    .conflict, "the limit of \(configuration.maxObservations) observations is reached; remove one first"
                )
            }
            s.reports[spec.id] = report
            s.commands.append(.start(spec, host: target.host, port: target.port, path: target.path))
        }
        wake()
        return report
    }

    /// Stops observing and forgets the observation.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound`` when there is no such observation.
    public func remove(id: String) throws(IoTError) {
        try shared.withLock { s throws(IoTError) in
            guard s.reports.removeValue(forKey: id) != nil else {
                throw IoTError(.notFound, "no observation \"\(id)\"; list them with GET /api/v1/coap/observations")
            }
            s.commands.append(.stop(id))
        }
        wake()
    }

    /// Every observation, sorted by id.
    public func list() -> [Report] {
        shared.withLock { $0.reports.values.sorted { $0.spec.id < $1.spec.id } }
    }

    /// One observation, or `nil`.
    public func report(id: String) -> Report? {
        shared.withLock { $0.reports[id] }
    }

    /// Runs the I/O thread until graceful shutdown or cancellation; then stops every observation.
    public func run() async throws {
        let done = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let finished = Mutex(false)
        let rc = startDetachedThread(name: "coap-observe") { [self] in
            self.threadMain()
            let c = done.withLock { c -> CheckedContinuation<Void, Never>? in
                finished.withLock { $0 = true }
                defer { c = nil }
                return c
            }
            c?.resume()
        }
        guard rc == 0 else {
            throw IoTError(.unavailable, "cannot start the CoAP observer thread (pthread_create \(rc))")
        }
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let already = done.withLock { slot -> Bool in
                    if finished.withLock({ $0 }) { return true }
                    slot = c
                    return false
                }
                if already { c.resume() }
            }
        } onCancelOrGracefulShutdown: {
            self.shared.withLock { $0.stopping = true }
            self.wake()
        }
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeFD.write, &one, 1)
    }

    private func update(_ id: String, _ change: (inout Report) -> Void) {
        shared.withLock { s in
            if var r = s.reports[id] {
                change(&r)
                s.reports[id] = r
            }
        }
    }

    // MARK: - I/O thread

    /// I/O thread only: the live observations.
    fileprivate final class Observation {
        let spec: CoAPObservationSpec
        let path: [String]
        let session: OpaquePointer
        var token: [UInt8] = []
        var lastHeardMillis: Int64 = 0
        unowned let manager: CoAPObserverManager

        init(spec: CoAPObservationSpec, path: [String], session: OpaquePointer, manager: CoAPObserverManager) {
            self.spec = spec
            self.path = path
            self.session = session
            self.manager = manager
        }
    }

    private func threadMain() {
        coap_startup()
        coap_set_log_level(coap_log_t(LOG_EMERG))
        guard let ctx = coap_new_context(nil) else {
            logger.error("libcoap could not create a client context; CoAP observations do not run")
            return
        }
        coap_register_response_handler(ctx, coapObserveResponseHandler)
        var observations: [String: Observation] = [:]
        let coapFD = coap_context_get_coap_fd(ctx)
        var fds = [
            pollfd(fd: coapFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeFD.read, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            var now: coap_tick_t = 0
            coap_ticks(&now)
            let next = coap_io_prepare_epoll(ctx, now)
            let timeout = next == 0 || next > 100 ? 100 : Int32(next)
            fds[0].revents = 0
            fds[1].revents = 0
            _ = poll(&fds, 2, timeout)
            if fds[1].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 256)
                while read(wakeFD.read, &drain, 256) > 0 {}
            }
            let (commands, stopping) = shared.withLock { s in
                defer { s.commands.removeAll() }
                return (s.commands, s.stopping)
            }
            if stopping { break }
            for command in commands {
                switch command {
                case .start(let spec, let host, let port, let path):
                    guard let session = clientSession(ctx, host: host, port: port) else {
                        update(spec.id) {
                            $0.state = "failed"
                            $0.lastError = "cannot open a CoAP session to \(host):\(port)"
                        }
                        continue
                    }
                    let observation = Observation(spec: spec, path: path, session: session, manager: self)
                    coap_session_set_app_data(session, Unmanaged.passUnretained(observation).toOpaque())
                    observations[spec.id] = observation
                    register(observation)
                case .stop(let id):
                    if let observation = observations.removeValue(forKey: id) { closeObservation(observation) }
                }
            }
            coap_io_process(ctx, UInt32.max)  // COAP_IO_NO_WAIT
            let nowMillis = observerMonotonicMillis()
            for observation in observations.values
            where nowMillis - observation.lastHeardMillis >= configuration.reregisterAfter.inMilliseconds {
                register(observation)
            }
        }
        for observation in observations.values { closeObservation(observation) }
        coap_free_context(ctx)
    }

    private func clientSession(_ ctx: OpaquePointer, host: String, port: Int) -> OpaquePointer? {
        var address = coap_address_t()
        coap_address_init(&address)
        address.addr.sin.sin_family = sa_family_t(AF_INET)
        address.addr.sin.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, host, &address.addr.sin.sin_addr) == 1 else { return nil }
        address.size = socklen_t(MemoryLayout<sockaddr_in>.size)
        return coap_new_client_session(ctx, nil, &address, COAP_PROTO_UDP)
    }

    /// Sends `GET` with `Observe: 0` and a fresh token; notifications with an older token are refused (RST),
    /// which ends the device's old registration.
    private func register(_ observation: Observation) {
        observation.lastHeardMillis = observerMonotonicMillis()
        // 8 random bytes: libcoap's `coap_session_new_token` counts from the same value in every new
        // session, so every observation would carry the same token across restarts.
        var random = SystemRandomNumberGenerator()
        observation.token = (0..<8).map { _ in UInt8.random(in: 0...255, using: &random) }
        guard send(observation, observe: 0, type: COAP_MESSAGE_CON) else { return }
        update(observation.spec.id) { $0.registrations += 1 }
    }

    /// `GET` with the observation's token and `Observe: observe` (0 registers, 1 deregisters, RFC 7641 §3.6).
    private func send(_ observation: Observation, observe: UInt32, type: coap_pdu_type_t) -> Bool {
        guard
            let pdu = coap_pdu_init(
                type, COAP_REQUEST_CODE_GET, coap_mid_t(coap_new_message_id(observation.session)),
                coap_session_max_pdu_size(observation.session))
        else { return false }
        coap_add_token(pdu, observation.token.count, observation.token)
        var value = [UInt8](repeating: 0, count: 4)
        let n = coap_encode_var_safe(&value, 4, observe)
        coap_add_option(pdu, coap_option_num_t(COAP_OPTION_OBSERVE), Int(n), value)
        for segment in observation.path {
            let bytes = Array(segment.utf8)
            coap_add_option(pdu, coap_option_num_t(COAP_OPTION_URI_PATH), bytes.count, bytes)
        }
        return coap_send(observation.session, pdu) != COAP_INVALID_MID
    }

    /// Deregisters the observation at the device (a NON `GET` with `Observe: 1`), so the device stops
    /// notifying an address that will no longer answer, and releases its session.
    private func closeObservation(_ observation: Observation) {
        _ = send(observation, observe: 1, type: COAP_MESSAGE_NON)
        coap_session_set_app_data(observation.session, nil)
        coap_session_release(observation.session)
    }

    /// A response or notification (on the I/O thread). Journaled before returning, since libcoap acknowledges
    /// a confirmable notification once this returns.
    fileprivate func received(_ observation: Observation, _ pdu: OpaquePointer) -> coap_response_t {
        let token = coap_pdu_get_token(pdu)
        guard Array(UnsafeBufferPointer(start: token.s, count: token.length)) == observation.token else {
            return COAP_RESPONSE_FAIL  // an older registration: RST ends it
        }
        observation.lastHeardMillis = observerMonotonicMillis()
        let id = observation.spec.id
        let code = Int(coap_pdu_get_code(pdu).rawValue)
        guard code >> 5 == 2 else {
            update(id) {
                $0.state = "failed"
                $0.notifications += 1
                $0.rejected += 1
                $0.lastError = "the device answered \(code >> 5).\(code & 0x1F < 10 ? "0" : "")\(code & 0x1F)"
            }
            return COAP_RESPONSE_OK
        }
        var length = 0
        var data: UnsafePointer<UInt8>?
        _ = coap_get_data(pdu, &length, &data)
        let payload = data.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
        var iterator = coap_opt_iterator_t()
        let format = coap_check_option(pdu, coap_option_num_t(COAP_OPTION_CONTENT_FORMAT), &iterator).map { option in
            Int(coap_decode_var_bytes(coap_opt_value(option), Int(coap_opt_length(option))))
        }
        let message = InboundMessage(
            transport: "coap-observe", deviceUID: observation.spec.deviceUID, topic: observation.spec.uri,
            contentType: CoAPContentFormat.mediaType(format), payload: payload)
        let parser: any Parser = format == CoAPContentFormat.senmlJSON ? senmlParser : jsonParser
        do {
            _ = try gateway.submitBlocking(
                [.message(message, parser: parser, from: .device(observation.spec.identity))], onCacheMiss: .wait
            )[0].result.get()
            update(id) {
                $0.state = "observing"
                $0.notifications += 1
                $0.stored += 1
            }
        } catch {
            update(id) {
                $0.state = "observing"
                $0.notifications += 1
                $0.rejected += 1
                $0.lastError = error.message
            }
        }
        return COAP_RESPONSE_OK
    }

    fileprivate static func observation(_ session: OpaquePointer) -> Observation? {
        coap_session_get_app_data(session).map { Unmanaged<Observation>.fromOpaque($0).takeUnretainedValue() }
    }
}

private let coapObserveResponseHandler: coap_response_handler_t = { session, _, received, _ in
    guard let session, let received, let observation = CoAPObserverManager.observation(session) else {
        return COAP_RESPONSE_FAIL
    }
    return observation.manager.received(observation, received)
}

private func observerMonotonicMillis() -> Int64 {
    let d = ContinuousClock.now - observerEpoch
    return d.components.seconds * 1_000 + d.components.attoseconds / 1_000_000_000_000_000
}

private let observerEpoch = ContinuousClock.now

extension CoAPObserverManager.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case maxObservations, reregisterAfterMillis }

    /// Reads `maxObservations` and `reregisterAfterMillis` (in iotd.yaml they sit in `coap:`, beside the
    /// listener's settings); the outbound policy is not read here (iotd's top-level `outbound:`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            reregisterAfter: try c.decodeMillis(.reregisterAfterMillis, or: d.reregisterAfter),
            maxObservations: try c.decode(.maxObservations, or: d.maxObservations))
    }
}
