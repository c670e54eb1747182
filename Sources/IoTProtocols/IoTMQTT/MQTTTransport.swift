import Glibc
public import IoTCore
public import Logging
import ServiceLifecycle
import Synchronization

/// Ingest from an MQTT broker: subscribes to device topics and journals every message before libmosquitto
/// acknowledges it.
///
/// Each ``Subscription`` has a topic filter (shared subscriptions `$share/<group>/…` too), a QoS, a
/// parser, and optionally a ``TopicTemplate`` that names the device (`devices/{uid}/telemetry`); without a
/// template the device is the client id and the parser may name other devices
/// (``IoTCore/DeviceRecord/identificationCode``).
///
/// The messages of one read pass on the loop thread (libmosquitto's `on_message` calls of one
/// `mosquitto_loop_read` burst) go through ``IoTCore/IngestGateway/submitBlocking(_:onCacheMiss:)`` together, in one
/// journal write, at the end of the pass and before its PUBACKs are written (see <doc:MQTTDurability>).
/// Outcomes:
/// - journaled: acknowledged;
/// - rejected (malformed payload, unknown device or signal, topic that does not fit the template,
///   payload over ``Configuration/maxPayloadBytes``): counted by the gateway and acknowledged, so the
///   broker does not send it again; other messages carry on;
/// - back-pressure (the store is behind): the loop waits and retries, so reading from the broker pauses;
/// - the journal fails or the ingestor shuts down: the connection is dropped before the PUBACK leaves,
///   and the broker delivers the message again after the reconnect.
///
/// ```swift
/// let mqtt = try MQTTTransport(
///     configuration: .init(
///         client: .init(host: "127.0.0.1", port: 1883, clientID: "iotd-ingest"),
///         tenant: "acme",
///         subscriptions: [try .init(template: "devices/{uid}/telemetry", qos: 1)]),
///     gateway: DefaultIngestGateway(ingestor: ingestor), logger: logger)
/// let group = ServiceGroup(services: [ingestor, mqtt], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public final class MQTTTransport: Transport {
    /// One subscription and how its messages are read.
    public struct Subscription: Sendable {
        /// The MQTT topic filter.
        public var filter: String
        /// The QoS to subscribe with. Default 1 (at least once, the broker keeps messages while away).
        public var qos: Int
        /// Names the device from the topic; `nil` uses the client id as the device uid.
        public var template: TopicTemplate?
        /// Turns payloads into records. Default ``IoTCore/JSONParser``.
        public var parser: any Parser

        /// A subscription to `filter`.
        public init(filter: String, qos: Int = 1, template: TopicTemplate? = nil, parser: any Parser = JSONParser()) {
            self.filter = filter
            self.qos = qos
            self.template = template
            self.parser = parser
        }

        /// A subscription to the filter that covers `template` (`devices/{uid}/telemetry` subscribes to
        /// `devices/+/telemetry`); `shareGroup` makes it a shared subscription `$share/<group>/…`.
        public init(template: String, qos: Int = 1, shareGroup: String? = nil, parser: any Parser = JSONParser())
            throws(IoTError)
        {
            let t = try TopicTemplate(template)
            self.init(
                filter: shareGroup.map { "$share/\($0)/\(t.filter)" } ?? t.filter, qos: qos, template: t, parser: parser
            )
        }
    }

    /// The broker connection and the subscriptions.
    public struct Configuration: Sendable {
        /// The broker connection.
        public var client: MQTTClient.Configuration
        /// The tenant the devices belong to.
        public var tenant: TenantID
        /// What to subscribe to.
        public var subscriptions: [Subscription]
        /// Larger payloads are rejected (counted as `payloadTooLarge`) without parsing. Default 256 KiB.
        public var maxPayloadBytes: Int

        /// Creates a configuration.
        public init(
            client: MQTTClient.Configuration, tenant: TenantID, subscriptions: [Subscription],
            maxPayloadBytes: Int = 256 * 1024
        ) {
            self.client = client
            self.tenant = tenant
            self.subscriptions = subscriptions
            self.maxPayloadBytes = maxPayloadBytes
        }
    }

    /// Outcomes of the messages this transport received (``IoTCore/MQTTIngestCounters``).
    public typealias Counters = MQTTIngestCounters

    /// The configuration in force.
    public let configuration: Configuration
    /// The broker client: its ``MQTTClient/status``, and ``MQTTClient/publish(topic:payload:qos:retain:)``
    /// for downlink.
    public let client: MQTTClient
    let gateway: any IngestGateway
    let logger: Logger
    let counterState = Mutex(Counters(stored: 0, rejected: 0, notAcknowledged: 0))
    let stopping = Atomic<Bool>(false)
    let starter = Mutex<Task<Void, Never>?>(nil)
    /// The messages of the current read pass (loop thread only), journaled at its end.
    let pass = Mutex<[IngestSubmission]>([])

    /// `"mqtt"`: the transport label of messages and counters.
    public var name: String { "mqtt" }

    /// Creates the transport; nothing connects before ``run()``.
    ///
    /// - Parameters:
    ///   - gateway: where messages go; the broker has authenticated their senders (a topic's device, or the
    ///     subscription for the tenant).
    ///   - group: the loop threads to run on; `nil` gives the transport a thread of its own.
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid configuration.
    public init(
        configuration: Configuration, gateway: any IngestGateway, group: MQTTEventLoopGroup? = nil,
        logger: Logger = Logger(label: "iot.mqtt")
    ) throws(IoTError) {
        guard !configuration.subscriptions.isEmpty else {
            throw IoTError(.invalidArgument, "an MQTT transport needs at least one subscription")
        }
        guard configuration.maxPayloadBytes > 0 else {
            throw IoTError(.invalidArgument, "maxPayloadBytes must be positive")
        }
        self.configuration = configuration
        self.gateway = gateway
        self.logger = logger
        client = try MQTTClient(configuration: configuration.client, group: group, logger: logger)
        for sub in configuration.subscriptions {
            try client.subscribe(sub.filter, qos: sub.qos) { [weak self] message in
                self?.ingest(message, sub)
            }
        }
        client.onReadPassEnd { [weak self] in self?.journalPass() }
    }

    /// A transport that submits to a ``IoTCore/DefaultIngestGateway`` over `ingestor`.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid configuration.
    public convenience init(
        configuration: Configuration, ingestor: Ingestor, group: MQTTEventLoopGroup? = nil,
        logger: Logger = Logger(label: "iot.mqtt")
    ) throws(IoTError) {
        try self.init(
            configuration: configuration, gateway: DefaultIngestGateway(ingestor: ingestor), group: group,
            logger: logger)
    }

    /// What became of the messages received so far.
    public var outcomes: Counters { counterState.withLock { $0 } }

    /// Waits for the ingestor to be ready, connects, and serves until graceful shutdown or cancellation;
    /// then disconnects (the broker keeps the session and what arrives meanwhile).
    public func run() async throws {
        startIngest()
        try? await gracefulShutdown()
        await stopIngest()
    }

    /// Connects once the ingestor is ready (in the background) — for hosts that run the transport without
    /// a `ServiceGroup`, such as ``MQTTClientManager``.
    public func startIngest() {
        let task = Task { [client, gateway] in
            while !gateway.isReady {
                if Task.isCancelled { return }
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
            if !Task.isCancelled { client.start() }
        }
        starter.withLock { $0 = task }
    }

    /// Disconnects and stops; returns when the client is off its loop thread.
    public func stopIngest() async {
        stopping.store(true, ordering: .releasing)
        let task = starter.withLock { $0 }
        task?.cancel()
        await task?.value
        await client.stop()
    }

    /// Publishes a downlink message to a device; see ``MQTTClient/publish(topic:payload:qos:retain:)``.
    public func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) async throws(IoTError) {
        try await client.publish(topic: topic, payload: payload, qos: qos, retain: retain)
    }

    /// Runs on the loop thread, inside libmosquitto's `on_message`.
    func ingest(_ m: MQTTMessage, _ sub: Subscription) {
        if m.payload.count > configuration.maxPayloadBytes {
            refuse(
                IoTError(
                    .payloadTooLarge,
                    "\(m.payload.count) bytes on '\(m.topic)' is over maxPayloadBytes (\(configuration.maxPayloadBytes))"
                ))
            counterState.withLock { $0.rejected += 1 }
            return
        }
        let uid: String
        if let template = sub.template {
            guard let named = template.deviceUID(in: m.topic) else {
                refuse(IoTError(.invalidArgument, "topic '\(m.topic)' does not fit the template '\(template)'"))
                counterState.withLock { $0.rejected += 1 }
                return
            }
            uid = named
        } else {
            uid = configuration.client.clientID
        }
        let message = InboundMessage(transport: name, deviceUID: uid, topic: m.topic, payload: m.payload)
        // With a template the topic names the sending device, which speaks only for itself unless it is a
        // gateway. Without one the subscription itself is the sender (the broker's ACL decides who publishes
        // there), and its records may name any device of the tenant: an empty sender uid.
        let identity = DeviceIdentity(tenant: configuration.tenant, deviceUID: sub.template == nil ? "" : uid)
        pass.withLock { $0.append(.message(message, parser: sub.parser, from: .device(identity))) }
    }

    /// Counts a message refused before it was parsed (never waits).
    private func refuse(_ error: IoTError) {
        _ = gateway.submitBlocking([.refused(error, transport: name)], onCacheMiss: .deferToAsync)
    }

    /// Runs on the loop thread at the end of a read pass, before the pass's PUBACKs are written: journals
    /// its messages in one hop to the ingestor.
    func journalPass() {
        var batch = pass.withLock { p in
            defer { p.removeAll(keepingCapacity: true) }
            return p
        }
        guard !batch.isEmpty else { return }
        counterState.withLock { $0.readPasses += 1 }
        var wait: UInt32 = 5_000
        while !batch.isEmpty {
            var stored = 0
            var rejected = 0
            var retryFrom: Int?
            var failure: IoTError?
            for (k, outcome) in gateway.submitBlocking(batch, onCacheMiss: .wait).enumerated() {
                switch outcome.result {
                case .success: stored += 1
                case .failure(let error):
                    switch error.code {
                    case .backpressure where !stopping.load(ordering: .acquiring):
                        // Every later message failed with it too: retry from here, in order.
                        if retryFrom == nil { retryFrom = k }
                    case .backpressure, .shutdown, .journal, .storage, .unavailable, .timeout:
                        if failure == nil { failure = error }
                    default:
                        rejected += 1
                        logger.debug(
                            "MQTT message rejected",
                            metadata: ["topic": "\(batch[k].topic ?? "")", "error": "\(error.message)"])
                    }
                }
            }
            if let failure {
                // Not all in the journal: drop the connection before libmosquitto's PUBACKs leave; the broker
                // sends them again (what was journaled is stored once: the store skips exact duplicates).
                let lost = batch.count - stored - rejected
                counterState.withLock {
                    $0.stored += stored
                    $0.rejected += rejected
                    $0.notAcknowledged += lost
                }
                logger.warning(
                    "MQTT messages not journaled; dropping the connection so the broker sends them again",
                    metadata: ["messages": "\(lost)", "error": "\(failure.message)"])
                client.abortConnection()
                return
            }
            counterState.withLock {
                $0.stored += stored
                $0.rejected += rejected
            }
            guard let retryFrom else { return }
            batch.removeFirst(retryFrom)
            usleep(wait)
            wait = min(wait * 2, 200_000)
        }
    }
}

extension IngestSubmission {
    /// The topic of a message submission, for logs.
    fileprivate var topic: String? {
        switch content {
        case .message(let message, _), .foreignFormat(let message, _): message.topic
        case .records, .refused: nil
        }
    }
}
