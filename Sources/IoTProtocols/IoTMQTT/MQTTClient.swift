internal import CIoTMosquitto
import Glibc
public import IoTCore
public import Logging
import Synchronization

/// One message delivered by the broker.
public struct MQTTMessage: Sendable, Hashable {
    /// The topic it was published on.
    public var topic: String
    /// The payload bytes (copied out of libmosquitto's buffer).
    public var payload: [UInt8]
    /// The QoS it was delivered with.
    public var qos: Int
    /// Whether the broker delivered it from its retained store.
    public var retain: Bool

    /// Creates a message.
    public init(topic: String, payload: [UInt8], qos: Int, retain: Bool) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// An MQTT client of a broker (libmosquitto), driven by an ``MQTTEventLoopGroup``: publish, and subscribe
/// with a handler per subscription.
///
/// The client connects on ``start()``, reconnects with exponential backoff and jitter, and subscribes
/// again on every connection. A broker that refuses the credentials (CONNACK "not authorised", "bad user
/// name or password") puts the client in ``State/failed`` with ``Status/lastError`` set, and it does not
/// retry: fix the configuration and create a new client.
///
/// Handlers run on the client's loop thread, synchronously, before libmosquitto's acknowledgement for the
/// message leaves the process: the client sets libmosquitto's threaded mode, so the PUBACK that
/// libmosquitto queues before calling `on_message` is only written by the loop after the read pass, that
/// is after the handler returned. A handler that journals (``MQTTTransport``) therefore acknowledges a
/// QoS 1 message only once it is in the journal. See <doc:MQTTDurability>.
///
/// ```swift
/// let client = try MQTTClient(configuration: .init(host: "127.0.0.1", port: 1883, clientID: "provisioner"))
/// _ = try client.subscribe("$CONTROL/dynamic-security/v1/response", qos: 1) { message in
///     print(String(decoding: message.payload, as: UTF8.self))
/// }
/// client.start()
/// try await client.waitUntilReady()
/// try await client.publish(topic: "$CONTROL/dynamic-security/v1", payload: Array(command.utf8), qos: 1)
/// await client.stop()
/// ```
public final class MQTTClient: @unchecked Sendable {
    // @unchecked Sendable: `handle` is used from other threads only through libmosquitto calls that take
    // its own mutexes (`mosquitto_publish`, `mosquitto_subscribe` queue a packet; threaded mode means they
    // never write to the socket); every socket read and write, connect and disconnect runs on `loop`'s
    // thread. `shared` is under a mutex; `io` is touched only on the loop thread.

    /// What the client is doing (``IoTCore/MQTTClientState``).
    public typealias State = MQTTClientState
    /// A subscription as the broker answered it (``IoTCore/MQTTSubscriptionStatus``).
    public typealias SubscriptionStatus = MQTTSubscriptionStatus
    /// Counters and state, for monitoring (``IoTCore/MQTTClientStatus``).
    public typealias Status = MQTTClientStatus
    /// Where and how a client connects (``IoTCore/MQTTBrokerConfiguration``).
    public typealias Configuration = MQTTBrokerConfiguration
    /// TLS to the broker (``IoTCore/MQTTBrokerTLS``).
    public typealias TLS = MQTTBrokerTLS
    /// The MQTT protocol version spoken to the broker (``IoTCore/MQTTProtocolVersion``).
    public typealias ProtocolVersion = MQTTProtocolVersion

    /// Receives the messages of one subscription, on the loop thread; see ``MQTTClient``.
    public typealias Handler = @Sendable (MQTTMessage) -> Void

    struct Subscription: Sendable {
        var id: Int
        var filter: String
        var matchFilter: String
        var qos: Int32
        var handler: Handler
    }

    struct Shared {
        var state: State = .idle
        var lastError: String?
        var reconnects = 0
        var messagesOut = 0
        var subscriptions: [Subscription] = []
        var granted: [Int: Int] = [:]
        var nextSubscriptionID = 1
        var publishWaiters: [Int32: CheckedContinuation<Void, any Error>] = [:]
        var earlyPublishes: Set<Int32> = []
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Loop-thread state.
    struct IO {
        var fd: Int32 = -1
        var watchingWrites = false
        var started = false
        var everConnected = false
        var attemptedOnce = false
        var attemptStartedAt: Int64 = 0
        var nextAttemptAt: Int64 = 0
        var delay: Int64 = 0
        var pendingSubscribes: [Int32: Int] = [:]
        /// The current one-second window of the inbound budget: when it began, and ``bytesIn`` then.
        var windowStart: Int64 = 0
        var windowStartBytes = 0
        /// Whether reading is paused until the window ends (the budget is spent).
        var readingPaused = false
        /// Whether the epoll set watches the socket without reads.
        var watchingPaused = false
    }

    /// The configuration in force.
    public let configuration: Configuration
    let id: UInt64
    let loop: MQTTEventLoop
    let ownedGroup: MQTTEventLoopGroup?
    let handle: OpaquePointer
    let logger: Logger
    let shared = Mutex(Shared())
    let messagesIn = Atomic<Int>(0)
    let bytesIn = Atomic<Int>(0)
    /// Payload bytes the client may read per second; 0 for no limit (see ``inboundBudget``).
    let budget = Atomic<Int>(0)
    /// One-second windows in which the client spent its budget and stopped reading.
    let budgetWindowsSpent = Atomic<Int>(0)
    var io = IO()
    /// Handlers, read on every message without taking `shared`.
    let handlers = Mutex<[Subscription]>([])
    /// Called on the loop thread after each read pass, before the pass's acknowledgements are written.
    let readPassObservers = Mutex<[@Sendable () -> Void]>([])

    private static let ids = Atomic<UInt64>(1)
    private static let libraryInitialised: Bool = {
        mosquitto_lib_init()
        return true
    }()

    /// The payload bytes the client reads from the broker per second at most, or `nil` for no limit.
    ///
    /// Once a one-second window's budget is spent, the client stops reading from its socket until the window
    /// ends: the broker keeps what it has not sent (a persistent session queues it, within the broker's
    /// `max_queued_messages`), the client's writes and keep-alive go on. ``MQTTClientManager`` sets it for a
    /// client over its share of an instance limit; set from any thread.
    public var inboundBudget: Int? {
        get {
            let value = budget.load(ordering: .relaxed)
            return value > 0 ? value : nil
        }
        set { budget.store(max(0, newValue ?? 0), ordering: .relaxed) }
    }

    /// How many one-second windows the client spent its ``inboundBudget`` in (and paused reading).
    public var budgetWindowsSpentCount: Int { budgetWindowsSpent.load(ordering: .relaxed) }

    /// Creates a client; nothing connects before ``start()``.
    ///
    /// - Parameters:
    ///   - group: the loops to run on. `nil` starts a private group of one thread for this client (fine for
    ///     one or two clients; use a shared group, or ``MQTTClientManager``, for many).
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid configuration or unreadable TLS
    ///   files.
    public init(
        configuration: Configuration, group: MQTTEventLoopGroup? = nil, logger: Logger = Logger(label: "iot.mqtt")
    ) throws(IoTError) {
        try configuration.validate()
        _ = Self.libraryInitialised
        guard
            let h = mosquitto_new(
                configuration.clientID.isEmpty ? nil : configuration.clientID, configuration.cleanSession, nil)
        else {
            throw IoTError(
                .invalidArgument, "libmosquitto could not create a client (out of memory or invalid client id)")
        }
        handle = h
        self.configuration = configuration
        self.logger = logger
        id = Self.ids.add(1, ordering: .relaxed).newValue
        if let group {
            ownedGroup = nil
            loop = group.loopForNewClient()
        } else {
            let own = MQTTEventLoopGroup(threads: 1, name: "mqtt-\(configuration.clientID)")
            ownedGroup = own
            loop = own.loopForNewClient()
        }
        // On failure, deinit releases the handle and the loop slot.
        try configureHandle()
    }

    deinit {
        mosquitto_destroy(handle)
        loop.clientCount.subtract(1, ordering: .relaxed)
        ownedGroup?.shutdown()
    }

    private func configureHandle() throws(IoTError) {
        func check(_ rc: Int32, _ what: String) throws(IoTError) {
            guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                throw IoTError(.invalidArgument, "\(what): \(Self.describe(rc))", nativeCode: rc, domain: .libmosquitto)
            }
        }
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        try check(mosquitto_threaded_set(handle, true), "threaded mode")
        let version = configuration.protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311
        try check(mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, version), "protocol version")
        if let user = configuration.username {
            try check(mosquitto_username_pw_set(handle, user, configuration.password), "username and password")
        }
        if let tls = configuration.tls {
            if tls.caFile == nil && tls.caDirectory == nil {
                try check(
                    mosquitto_int_option(handle, MOSQ_OPT_TLS_USE_OS_CERTS, 1), "TLS with the system's authorities")
            } else {
                try check(
                    mosquitto_tls_set(handle, tls.caFile, tls.caDirectory, tls.certificateFile, tls.keyFile, nil),
                    "TLS files (check that caFile, certificateFile and keyFile exist and are readable PEM)")
            }
            try check(mosquitto_tls_insecure_set(handle, !tls.verifyHostname), "TLS host name verification")
        }
        mosquitto_connect_callback_set(handle, mqttOnConnect)
        mosquitto_disconnect_callback_set(handle, mqttOnDisconnect)
        mosquitto_message_callback_set(handle, mqttOnMessage)
        mosquitto_subscribe_callback_set(handle, mqttOnSubscribe)
        mosquitto_publish_callback_set(handle, mqttOnPublish)
    }

    // MARK: - Public API

    /// Starts connecting (in the background, on the loop thread). Calling it again does nothing.
    public func start() {
        loop.execute { self.startOnLoop() }
    }

    /// Disconnects cleanly (a DISCONNECT, so the broker keeps the session but sends no will) and stops
    /// reconnecting; returns when the client is off its loop. Pending publishes fail.
    public func stop() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let already = shared.withLock { s -> Bool in
                if s.state == .stopped { return true }
                s.stopWaiters.append(c)
                return false
            }
            if already {
                c.resume()
                return
            }
            loop.execute { self.stopOnLoop(graceful: true) }
        }
    }

    /// Adds a subscription; sent at once when connected, and again on every reconnect.
    ///
    /// A message goes to the first subscription, in the order they were added, whose filter matches its
    /// topic (a `$share/<group>/` prefix is ignored for matching), so overlapping filters do not deliver a
    /// message twice.
    /// - Returns: an id for ``unsubscribe(_:)``.
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid filter or QoS.
    @discardableResult
    public func subscribe(_ filter: String, qos: Int = 1, handler: @escaping Handler) throws(IoTError) -> Int {
        guard (0...2).contains(qos) else { throw IoTError(.invalidArgument, "QoS \(qos) is not 0, 1 or 2") }
        let match = Self.matchFilter(filter)
        guard mosquitto_sub_topic_check(match) == MOSQ_ERR_SUCCESS.rawValue else {
            throw IoTError(.invalidArgument, "'\(filter)' is not a valid topic filter")
        }
        let sub = shared.withLock { s -> Subscription in
            let sub = Subscription(
                id: s.nextSubscriptionID, filter: filter, matchFilter: match, qos: Int32(qos), handler: handler)
            s.nextSubscriptionID += 1
            s.subscriptions.append(sub)
            return sub
        }
        handlers.withLock { $0.append(sub) }
        loop.execute { self.sendSubscribe(sub) }
        return sub.id
    }

    /// Calls `body` on the loop thread after each pass of reads, before the acknowledgements (PUBACK,
    /// PUBREC) of the messages delivered in that pass are written: a handler that buffers messages
    /// journals them there, and may still call ``abortConnection()`` so that none is acknowledged.
    func onReadPassEnd(_ body: @escaping @Sendable () -> Void) {
        readPassObservers.withLock { $0.append(body) }
    }

    /// Removes a subscription (and unsubscribes at the broker when connected).
    public func unsubscribe(_ id: Int) {
        let removed = shared.withLock { s -> Subscription? in
            guard let i = s.subscriptions.firstIndex(where: { $0.id == id }) else { return nil }
            s.granted[id] = nil
            return s.subscriptions.remove(at: i)
        }
        handlers.withLock { $0.removeAll { $0.id == id } }
        guard let removed else { return }
        loop.execute {
            guard self.shared.withLock({ $0.state }) == .connected else { return }
            _ = mosquitto_unsubscribe(self.handle, nil, removed.filter)
            self.flush()
        }
    }

    /// Publishes a message and returns when the broker has it: for QoS 1 and 2 after its PUBACK / PUBCOMP,
    /// for QoS 0 once it was written to the socket.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unavailable`` when the client is not connected or stops before the
    ///   broker answered; ``IoTCore/IoTError/Code/invalidArgument`` for an invalid topic, QoS or size.
    public func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) async throws(IoTError) {
        guard (0...2).contains(qos) else { throw IoTError(.invalidArgument, "QoS \(qos) is not 0, 1 or 2") }
        do {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                // libmosquitto's lock is not held while `shared` is (its callbacks take `shared`): publish
                // first, then register; an acknowledgement that came first is kept in `earlyPublishes`.
                guard shared.withLock({ $0.state }) == .connected else {
                    c.resume(
                        throwing: IoTError(.unavailable, "publish to '\(topic)' failed: the client is not connected"))
                    return
                }
                var mid: Int32 = 0
                let rc = payload.withUnsafeBytes {
                    mosquitto_publish(handle, &mid, topic, Int32($0.count), $0.baseAddress, Int32(qos), retain)
                }
                if rc == MOSQ_ERR_SUCCESS.rawValue {
                    let done = shared.withLock { s -> Bool in
                        s.messagesOut += 1
                        if s.earlyPublishes.remove(mid) != nil { return true }
                        s.publishWaiters[mid] = c
                        return false
                    }
                    if done { c.resume() }
                } else {
                    let code: IoTError.Code =
                        rc == MOSQ_ERR_NO_CONN.rawValue || rc == MOSQ_ERR_CONN_LOST.rawValue
                        ? .unavailable : .invalidArgument
                    c.resume(
                        throwing: IoTError(
                            code, "publish to '\(topic)' failed: \(Self.describe(rc))", nativeCode: rc,
                            domain: .libmosquitto))
                    return
                }
                if !loop.inLoop { loop.execute { self.flush() } }
            }
        } catch let error as IoTError {
            throw error
        } catch {
            throw IoTError(.unavailable, "publish to '\(topic)' failed: \(error)")
        }
    }

    /// Waits until the client is connected and the broker acknowledged every subscription.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unauthorized`` when the client failed (refused credentials),
    ///   ``IoTCore/IoTError/Code/timeout`` after `timeoutMillis` with the last error in the message.
    public func waitUntilReady(timeoutMillis: Int64 = 10_000) async throws(IoTError) {
        let deadline = MQTTClock.millis() + timeoutMillis
        while true {
            let s = status
            if s.state == .connected && s.subscriptions.allSatisfy({ $0.grantedQoS != nil }) { return }
            if s.state == .failed {
                throw IoTError(.unauthorized, "the broker refused the client: \(s.lastError ?? "no reason given")")
            }
            if s.state == .stopped { throw IoTError(.unavailable, "the client is stopped") }
            if MQTTClock.millis() > deadline {
                throw IoTError(
                    .timeout,
                    "not connected and subscribed within \(timeoutMillis) ms (state \(s.state.rawValue), last error: \(s.lastError ?? "none")); check host, port and the broker"
                )
            }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    /// A snapshot of the client's state and counters.
    public var status: Status {
        shared.withLock { s in
            Status(
                state: s.state, lastError: s.lastError, messagesIn: messagesIn.load(ordering: .relaxed),
                bytesIn: bytesIn.load(ordering: .relaxed), messagesOut: s.messagesOut, reconnects: s.reconnects,
                subscriptions: s.subscriptions.map {
                    SubscriptionStatus(filter: $0.filter, qos: Int($0.qos), grantedQoS: s.granted[$0.id])
                })
        }
    }

    // MARK: - Helpers

    /// The filter used to match topics: a shared subscription's `$share/<group>/` prefix removed.
    static func matchFilter(_ filter: String) -> String {
        guard filter.hasPrefix("$share/") else { return filter }
        let rest = filter.dropFirst("$share/".count)
        guard let slash = rest.firstIndex(of: "/") else { return filter }
        return String(rest[rest.index(after: slash)...])
    }

    /// libmosquitto's words for a return code.
    static func describe(_ rc: Int32) -> String {
        if rc == MOSQ_ERR_ERRNO.rawValue {
            return String(cString: strerror(ciot_mosquitto_errno()))
        }
        return String(cString: mosquitto_strerror(rc))
    }
}
