internal import CIoTLinux
internal import CIoTMosquitto
import Glibc
import IoTCore
import Logging
import Synchronization

// Everything in this file runs on the client's loop thread.

extension MQTTClient {
    /// The most packets read in one pass before the loop serves the other clients.
    static let readBurst = 256

    func startOnLoop() {
        guard !io.started else { return }
        io.started = true
        io.delay = configuration.reconnectDelay.inMilliseconds
        loop.add(self)
        attemptConnect(now: MQTTClock.millis())
    }

    func setState(_ state: State, error: String? = nil) {
        shared.withLock { s in
            s.state = state
            if let error { s.lastError = error }
        }
    }

    func attemptConnect(now: Int64) {
        guard loop.gate.isOpen(at: now) else {
            // Tried again at every tick (100 ms), with no back-off: the lease may come back at any time.
            shared.withLock { s in
                guard s.state != .failed && s.state != .stopped else { return }
                s.state = .reconnecting
                s.lastError = "this instance's lease on its MQTT clients has lapsed; waiting for it"
            }
            io.nextAttemptAt = now
            return
        }
        setState(.connecting)
        io.attemptStartedAt = now
        let c = configuration
        var rc: Int32
        if c.protocolVersion == .v5 {
            // libmosquitto has no asynchronous MQTT 5 connect that takes CONNECT properties: this one
            // blocks the loop for the TCP handshake (on loopback or a LAN, well under a millisecond).
            var props: OpaquePointer?
            if !c.cleanSession {
                _ = mosquitto_property_add_int32(
                    &props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue),
                    UInt32(clamping: c.sessionExpiry.inMilliseconds / 1000))
            }
            rc = mosquitto_connect_bind_v5(
                handle, c.host, Int32(c.port), Int32(clamping: c.keepAlive.inMilliseconds / 1000), nil, props)
            mosquitto_property_free_all(&props)
        } else if !io.attemptedOnce {
            rc = mosquitto_connect_async(
                handle, c.host, Int32(c.port), Int32(clamping: c.keepAlive.inMilliseconds / 1000))
        } else {
            rc = mosquitto_reconnect_async(handle)
        }
        io.attemptedOnce = true
        let fd = mosquitto_socket(handle)
        guard rc == MOSQ_ERR_SUCCESS.rawValue, fd >= 0 else {
            connectionLost(reason: "cannot connect to \(c.host):\(c.port): \(Self.describe(rc))", now: now)
            return
        }
        io.fd = fd
        io.watchingWrites = true
        io.readingPaused = false
        io.watchingPaused = false
        loop.watch(fd: fd, client: id, writable: true, operation: EPOLL_CTL_ADD)
    }

    /// Reads and writes what the socket is ready for.
    func handle(events: UInt32) {
        guard io.fd >= 0 else { return }
        // Paused (the budget is spent): write only, unless the socket hung up or failed.
        let hangUp = EPOLLHUP.rawValue | EPOLLERR.rawValue | EPOLLRDHUP.rawValue
        if io.readingPaused && events & hangUp == 0 {
            flush()
            return
        }
        // Read on any event: it also drives a TLS handshake, and it reports errors and hang-ups. A budget stops
        // the pass at the packet that spends it.
        let limit = budget.load(ordering: .relaxed)
        for _ in 0..<Self.readBurst {
            ciot_mosquitto_clear_errno()
            let rc = mosquitto_loop_read(handle, 1)
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                endReadPass()
                connectionLost(reason: Self.describe(rc), now: MQTTClock.millis())
                return
            }
            let socket = mosquitto_socket(handle)
            if socket < 0 { break }
            let e = ciot_mosquitto_errno()
            // EAGAIN may not be the socket's: every packet libmosquitto queues (each PUBACK) also writes a byte to
            // its internal wake-up pipe, which nothing reads under this loop, and once that pipe is full the write
            // fails with EAGAIN. Only an empty receive queue ends the pass, or a read pass would stop at every
            // message and acknowledge them one by one.
            if (e == EAGAIN || e == EWOULDBLOCK) && ciot_socket_pending_bytes(socket) <= 0 { break }
            if limit > 0 && bytesIn.load(ordering: .relaxed) - io.windowStartBytes >= limit { break }
        }
        endReadPass()
        if limit > 0 && bytesIn.load(ordering: .relaxed) - io.windowStartBytes >= limit && !io.readingPaused {
            io.readingPaused = true
            budgetWindowsSpent.add(1, ordering: .relaxed)
        }
        flush()
    }

    /// Starts a new window of the inbound budget once a second, and reads again if reading was paused.
    func rollBudgetWindow(now: Int64) {
        guard now - io.windowStart >= 1_000 else { return }
        io.windowStart = now
        io.windowStartBytes = bytesIn.load(ordering: .relaxed)
        guard io.readingPaused else { return }
        io.readingPaused = false
        io.watchingPaused = false
        guard io.fd >= 0 else { return }
        loop.watch(fd: io.fd, client: id, writable: io.watchingWrites, operation: EPOLL_CTL_MOD)
        // What the pass stopped at may sit in TLS's buffer, which epoll does not see: read now.
        handle(events: 0)
    }

    /// Lets the read-pass observers handle what the pass delivered, before its acknowledgements leave.
    func endReadPass() {
        for observer in readPassObservers.withLock({ $0 }) { observer() }
    }

    /// Writes what libmosquitto has queued (PUBACKs of the messages just handled, publishes, pings).
    func flush() {
        guard io.fd >= 0 else { return }
        if mosquitto_want_write(handle) {
            let rc = mosquitto_loop_write(handle, 1)
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                connectionLost(reason: Self.describe(rc), now: MQTTClock.millis())
                return
            }
        }
        if mosquitto_socket(handle) < 0 {
            connectionLost(reason: "the connection was closed", now: MQTTClock.millis())
            return
        }
        let wantsWrite = mosquitto_want_write(handle)
        if wantsWrite != io.watchingWrites || io.readingPaused != io.watchingPaused {
            io.watchingWrites = wantsWrite
            io.watchingPaused = io.readingPaused
            loop.watch(
                fd: io.fd, client: id, writable: wantsWrite, readable: !io.readingPaused, operation: EPOLL_CTL_MOD)
        }
    }

    /// Keep-alive, connect timeouts, reconnects and the inbound budget's windows.
    func tick(now: Int64) {
        rollBudgetWindow(now: now)
        let state = shared.withLock { $0.state }
        switch state {
        case .connecting, .connected:
            guard io.fd >= 0 else { return }
            if !loop.gate.isOpen(at: now) {
                shutdown(io.fd, Int32(SHUT_RDWR))
                connectionLost(reason: "this instance's lease on its MQTT clients lapsed", now: now)
                io.delay = configuration.reconnectDelay.inMilliseconds
                io.nextAttemptAt = now
                return
            }
            if state == .connecting && now - io.attemptStartedAt > max(10_000, configuration.keepAlive.inMilliseconds) {
                shutdown(io.fd, Int32(SHUT_RDWR))
                connectionLost(
                    reason: "no CONNACK within \(max(10, configuration.keepAlive.inMilliseconds / 1000)) s", now: now)
                return
            }
            let rc = mosquitto_loop_misc(handle)
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                connectionLost(reason: Self.describe(rc), now: now)
                return
            }
            flush()
        case .reconnecting:
            if now >= io.nextAttemptAt { attemptConnect(now: now) }
        case .idle, .failed, .stopped:
            break
        }
    }

    /// The socket is gone (or never came up): stop watching it and plan the next attempt, unless the
    /// client failed or stopped.
    func connectionLost(reason: String, now: Int64) {
        if io.fd >= 0 {
            // The fd may already be closed by libmosquitto (then the kernel dropped it from the set).
            loop.watch(fd: io.fd, client: id, writable: false, operation: EPOLL_CTL_DEL)
            io.fd = -1
        }
        let state = shared.withLock { s -> State in
            if s.state == .failed || s.state == .stopped { return s.state }
            s.reconnects += 1
            s.lastError = reason
            s.state = .reconnecting
            s.granted.removeAll()
            return s.state
        }
        guard state == .reconnecting else { return }
        let jitter = Int64.random(in: -(io.delay / 4)...(io.delay / 4))
        io.nextAttemptAt = now + io.delay + jitter
        logger.debug(
            "MQTT connection lost; reconnecting",
            metadata: [
                "client": "\(configuration.clientID)", "reason": "\(reason)", "delay_ms": "\(io.delay + jitter)",
            ])
        io.delay = min(io.delay * 2, configuration.maxReconnectDelay.inMilliseconds)
    }

    func stopOnLoop(graceful: Bool) {
        if io.fd >= 0 {
            if graceful && shared.withLock({ $0.state }) == .connected {
                _ = mosquitto_disconnect(handle)
                _ = mosquitto_loop_write(handle, 1)
            }
            loop.watch(fd: io.fd, client: id, writable: false, operation: EPOLL_CTL_DEL)
            if mosquitto_socket(handle) >= 0 {
                // Not written (would block, or not connected yet): close without a DISCONNECT.
                shutdown(mosquitto_socket(handle), Int32(SHUT_RDWR))
                _ = mosquitto_loop_read(handle, 1)
            }
            endReadPass()
            io.fd = -1
        }
        let (publishes, stops) = shared.withLock { s in
            s.state = .stopped
            defer {
                s.publishWaiters.removeAll()
                s.stopWaiters.removeAll()
            }
            return (Array(s.publishWaiters.values), s.stopWaiters)
        }
        for p in publishes { p.resume(throwing: IoTErrorBox.stopped) }
        if io.started { loop.remove(self) }
        io.started = true
        for s in stops { s.resume() }
    }

    /// Loop thread only (a handler): shuts the socket down so that nothing queued — in particular the
    /// acknowledgement of the message being handled — is written; the client reconnects after its delay
    /// and the broker delivers unacknowledged messages again.
    func abortConnection() {
        if io.fd >= 0 { shutdown(io.fd, Int32(SHUT_RDWR)) }
    }

    /// The loop is shutting down with the client still on it.
    func abandon() {
        stopOnLoop(graceful: false)
    }

    func sendSubscribe(_ sub: Subscription) {
        guard io.fd >= 0, shared.withLock({ $0.state }) == .connected else { return }
        var mid: Int32 = 0
        let rc = mosquitto_subscribe(handle, &mid, sub.filter, sub.qos)
        if rc == MOSQ_ERR_SUCCESS.rawValue {
            io.pendingSubscribes[mid] = sub.id
        } else {
            setState(.connected, error: "subscribe '\(sub.filter)' failed: \(Self.describe(rc))")
        }
        flush()
    }

    // MARK: - libmosquitto callbacks (called inside mosquitto_loop_read/_write/_misc)

    func connected(rc: Int32) {
        guard rc == 0 else {
            let words =
                configuration.protocolVersion == .v5
                ? String(cString: mosquitto_reason_string(rc)) : String(cString: mosquitto_connack_string(rc))
            // 4/5 (3.1.1) and 134/135 (5): credentials refused; 2/133: client id refused. Retrying will not help.
            let permanent = [2, 4, 5, 133, 134, 135, 138].contains(rc)
            if permanent {
                setState(
                    .failed,
                    error:
                        "the broker refused the connection: \(words) (CONNACK \(rc)); fix the credentials or client id")
                logger.error(
                    "MQTT broker refused the client; not retrying",
                    metadata: ["client": "\(configuration.clientID)", "reason": "\(words)"])
            } else {
                shared.withLock { $0.lastError = "the broker refused the connection: \(words) (CONNACK \(rc))" }
            }
            return
        }
        io.delay = configuration.reconnectDelay.inMilliseconds
        let subs = shared.withLock { s -> [Subscription] in
            s.state = .connected
            s.granted.removeAll()
            return s.subscriptions
        }
        io.everConnected = true
        io.pendingSubscribes.removeAll()
        for sub in subs {
            var mid: Int32 = 0
            if mosquitto_subscribe(handle, &mid, sub.filter, sub.qos) == MOSQ_ERR_SUCCESS.rawValue {
                io.pendingSubscribes[mid] = sub.id
            }
        }
    }

    func subscribed(mid: Int32, granted: [Int32]) {
        guard let sub = io.pendingSubscribes.removeValue(forKey: mid) else { return }
        let qos = Int(granted.first ?? 128)
        shared.withLock { s in
            s.granted[sub] = qos
            if qos >= 128, let f = s.subscriptions.first(where: { $0.id == sub }) {
                s.lastError = "the broker refused the subscription '\(f.filter)' (not authorised or invalid)"
            }
        }
    }

    func published(mid: Int32) {
        let waiter = shared.withLock { s in
            let w = s.publishWaiters.removeValue(forKey: mid)
            if w == nil { s.earlyPublishes.insert(mid) }
            return w
        }
        waiter?.resume()
    }

    func deliver(_ message: UnsafePointer<mosquitto_message>) {
        let m = message.pointee
        let topic = m.topic.map { String(cString: $0) } ?? ""
        let count = Int(m.payloadlen)
        let payload = count > 0 ? [UInt8](UnsafeRawBufferPointer(start: m.payload, count: count)) : []
        messagesIn.add(1, ordering: .relaxed)
        bytesIn.add(count, ordering: .relaxed)
        let subs = handlers.withLock { $0 }
        let delivered = MQTTMessage(topic: topic, payload: payload, qos: Int(m.qos), retain: m.retain)
        if subs.count == 1 {
            subs[0].handler(delivered)
            return
        }
        for sub in subs {
            var matches = false
            mosquitto_topic_matches_sub(sub.matchFilter, topic, &matches)
            if matches {
                sub.handler(delivered)
                return
            }
        }
    }
}

/// The error of publishes cut short by ``MQTTClient/stop()``.
enum IoTErrorBox {
    static var stopped: IoTError { IoTError(.unavailable, "the MQTT client stopped before the broker acknowledged") }
}

// C callbacks: plain functions (no actor isolation), context through libmosquitto's userdata.

private func client(_ userdata: UnsafeMutableRawPointer?) -> MQTTClient? {
    userdata.map { Unmanaged<MQTTClient>.fromOpaque($0).takeUnretainedValue() }
}

func mqttOnConnect(_ handle: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ rc: Int32) {
    client(userdata)?.connected(rc: rc)
}

func mqttOnDisconnect(_ handle: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ rc: Int32) {
    // Handled where the loop call that closed the socket returns (connectionLost).
}

func mqttOnMessage(
    _ handle: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ message: UnsafePointer<mosquitto_message>?
) {
    guard let message else { return }
    client(userdata)?.deliver(message)
}

func mqttOnSubscribe(
    _ handle: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ mid: Int32, _ count: Int32,
    _ granted: UnsafePointer<Int32>?
) {
    let list = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(count))) } ?? []
    client(userdata)?.subscribed(mid: mid, granted: list)
}

func mqttOnPublish(_ handle: OpaquePointer?, _ userdata: UnsafeMutableRawPointer?, _ mid: Int32) {
    client(userdata)?.published(mid: mid)
}
