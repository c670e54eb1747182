import CIoTCoAP
import CIoTLinux
import IoTCore
import IoTIO
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One request as the I/O thread read it, copied out of libcoap's buffers.
struct CoAPIncoming: Sendable {
    var route: CoAPTelemetryRoute
    var path: String
    var contentFormat: Int?
    var payload: [UInt8]
    /// The peer's address without the port.
    var peer: String
}

/// A libcoap session pointer carried from the I/O thread to a task and back. It is only ever dereferenced on
/// the I/O thread; the server holds a reference on the session (`coap_session_reference`) until the answer
/// is sent, so the pointer stays valid while it travels.
struct CoAPSessionPointer: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// The libcoap server behind ``CoAPTransport``: one context with a UDP and/or DTLS endpoint and an
/// unknown-resource handler for every path, driven by one dedicated I/O thread (its wait is a
/// ``CoAPDatagramReader``, which reads a burst of datagrams per wait).
///
/// libcoap 4.3.1 is not thread-safe, so everything that touches a libcoap object runs on that thread. A
/// request from a device whose token and registry data are cached is parsed and journaled on that thread
/// (``onRequestNow``; the journal write is its only wait) and answered at once. Any other request is handed
/// to a task (``onRequest``) and parked with libcoap's separate-response
/// support (`coap_register_async`); the task's answer comes back through a queue and a wake pipe, and the
/// I/O thread triggers the parked request, whose handler then fills in the answer. The thread never waits
/// for the ingestor, so many requests are in flight at once.
///
/// `@unchecked Sendable`: the libcoap context and the `pending` counter are only touched on the I/O thread
/// (the thread body and the C callbacks it runs); the state shared with tasks is in `shared` (a `Mutex`),
/// the rest is immutable after `init`.
final class CoAPServer: @unchecked Sendable {
    typealias RequestHandler = @Sendable (CoAPIncoming) async -> CoAPReply
    /// Answers a request on the I/O thread when everything it needs is cached, or returns `nil` to have it
    /// parked and handed to the ``RequestHandler``.
    typealias ImmediateHandler = @Sendable (CoAPIncoming) -> CoAPReply?

    private struct Shared {
        var completions: [(CoAPSessionPointer, [UInt8], CoAPReply)] = []
        var stopping = false
        var finished = false
        var finishWaiters: [CheckedContinuation<Void, Never>] = []
    }

    let configuration: CoAPTransport.Configuration
    let logger: Logger
    let udpPort: ListeningPort
    let dtlsPort: ListeningPort
    private let onRequest: RequestHandler
    private let onRequestNow: ImmediateHandler
    private let onRefused: @Sendable (IoTError) -> Void
    private let shared = Mutex(Shared())
    /// A non-blocking pipe in libcoap's epoll set that wakes the I/O thread.
    private let wakeFD: (read: Int32, write: Int32)
    /// Set after each write to the pipe; the I/O thread drains the pipe only when it finds it set (a drain
    /// after every wait would cost a `read` per request).
    private let wakeWritten = Atomic<Bool>(false)
    /// I/O thread only: requests parked in libcoap and not yet answered.
    private var pending = 0
    /// I/O thread only: requests that reached the handler.
    private var handled = 0
    /// I/O thread only: PSK keys handed to libcoap, freed after the context.
    private var psk: CoAPPSKTable?
    /// I/O thread only: counts failed DTLS handshakes (set up with DTLS).
    private(set) var handshakeCounter: CoAPHandshakeCounter?

    init(
        configuration: CoAPTransport.Configuration, logger: Logger, udpPort: ListeningPort, dtlsPort: ListeningPort,
        onRequestNow: @escaping ImmediateHandler, onRequest: @escaping RequestHandler,
        onRefused: @escaping @Sendable (IoTError) -> Void
    ) {
        self.configuration = configuration
        self.logger = logger
        self.udpPort = udpPort
        self.dtlsPort = dtlsPort
        self.onRequest = onRequest
        self.onRequestNow = onRequestNow
        self.onRefused = onRefused
        self.wakeFD = makeWakePipe()
    }

    deinit {
        Glibc.close(wakeFD.read)
        Glibc.close(wakeFD.write)
    }

    /// Starts the I/O thread.
    func start() {
        let rc = startDetachedThread(name: "coap-io") { [self] in self.threadMain() }
        precondition(rc == 0, "cannot start the CoAP I/O thread: pthread_create returned \(rc)")
    }

    /// Asks the I/O thread to stop: new requests get 5.03, accepted ones are answered for up to
    /// ``CoAPTransport/Configuration/shutdownGrace``.
    func stop() {
        shared.withLock { $0.stopping = true }
        wake()
    }

    /// Returns once the I/O thread has freed the libcoap context.
    func finished() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = shared.withLock { s -> Bool in
                if s.finished { return true }
                s.finishWaiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeFD.write, &one, 1)
        // After the write: a drain that sees the flag reads every byte written before it was set.
        wakeWritten.store(true, ordering: .releasing)
    }

    /// Called by a task with the answer to a parked request.
    private func complete(_ session: CoAPSessionPointer, token: [UInt8], reply: CoAPReply) {
        let first = shared.withLock { s -> Bool in
            s.completions.append((session, token, reply))
            return s.completions.count == 1
        }
        if first { wake() }
    }

    // MARK: - I/O thread

    private func threadMain() {
        defer {
            let waiters = shared.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.finished = true
                defer { s.finishWaiters = [] }
                return s.finishWaiters
            }
            for w in waiters { w.resume() }
        }
        coap_startup()
        coap_set_log_level(coap_log_t(LOG_EMERG))
        guard let ctx = coap_new_context(nil) else {
            udpPort.stopped("libcoap could not create a context")
            dtlsPort.stopped("libcoap could not create a context")
            return
        }
        defer {
            coap_free_context(ctx)
            psk = nil
        }
        coap_context_set_block_mode(ctx, UInt8(COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY))
        do throws(IoTError) {
            try bind(ctx)
        } catch {
            logger.error("CoAP listener failed to start", metadata: ["error": "\(error)"])
            udpPort.stopped(error.message)
            dtlsPort.stopped(error.message)
            return
        }
        let resource = coap_resource_unknown_init2(coapTelemetryHandler, 0)
        coap_register_request_handler(resource, COAP_REQUEST_POST, coapTelemetryHandler)
        coap_resource_set_userdata(resource, Unmanaged.passUnretained(self).toOpaque())
        coap_add_resource(ctx, resource)
        loop(ctx)
        udpPort.stopped("it has stopped")
        dtlsPort.stopped("it has stopped")
    }

    private func loop(_ ctx: OpaquePointer) {
        // One wait for both: the wake pipe joins libcoap's own epoll set, so one `epoll_wait` returns for a
        // datagram, one of libcoap's timers or a wake.
        let coapFD = coap_context_get_coap_fd(ctx)
        var reader: CoAPDatagramReader?
        if coapFD >= 0, Self.watch(wakeFD.read, in: coapFD) {
            reader = CoAPDatagramReader(epollFD: coapFD)
        } else {
            logger.warning("CoAP listener polls every 10 ms (libcoap has no epoll descriptor to wait on)")
        }
        var deadline: Int64?
        var drain = [UInt8](repeating: 0, count: 256)
        var prepare = true
        while true {
            if reader != nil {
                reader!.waitAndProcess(ctx, prepareFirst: prepare) { self.handled }
                prepare = false
            } else {
                coap_io_process(ctx, 10)
            }
            if wakeWritten.exchange(false, ordering: .acquiring) {
                while read(wakeFD.read, &drain, drain.count) > 0 {}
            }
            let (completions, stopping) = shared.withLock { s in
                defer { s.completions.removeAll(keepingCapacity: true) }
                return (s.completions, s.stopping)
            }
            // A triggered request is answered by libcoap's next `coap_io_prepare_epoll` (or `coap_io_process`).
            for (session, token, reply) in completions { trigger(session.pointer, token: token, reply: reply) }
            if !completions.isEmpty { prepare = true }
            if stopping {
                let nowMillis = monotonicMillis()
                if deadline == nil { deadline = nowMillis + Int64(max(0, configuration.shutdownGrace.inMilliseconds)) }
                if pending == 0 || nowMillis >= deadline! {
                    if pending > 0 {
                        logger.warning(
                            "CoAP listener stopped with requests unanswered (they are journaled or were refused; devices retry)",
                            metadata: ["pending": "\(pending)"])
                    }
                    return
                }
            }
        }
    }

    /// Adds `fd` to libcoap's epoll set `epfd` with a null data pointer, which libcoap's `coap_io_do_epoll`
    /// skips (it marks its own timer descriptor that way), so `coap_io_process` also returns when `fd` turns
    /// readable.
    private static func watch(_ fd: Int32, in epfd: Int32) -> Bool {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.ptr = nil
        return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0
    }

    /// Hands a task's answer to the parked request, which libcoap then runs through the handler again.
    private func trigger(_ session: OpaquePointer, token: [UInt8], reply: CoAPReply) {
        let async = token.withUnsafeBufferPointer { buffer in
            coap_find_async(session, coap_bin_const_t(length: buffer.count, s: buffer.baseAddress))
        }
        guard let async else {
            pending -= 1
            coap_session_release(session)
            return
        }
        coap_async_set_app_data(async, Unmanaged.passRetained(CoAPReplyBox(reply)).toOpaque())
        coap_async_trigger(async)
    }

    private func bind(_ ctx: OpaquePointer) throws(IoTError) {
        if let port = configuration.port {
            let bound = try endpoint(ctx, port: port, proto: COAP_PROTO_UDP)
            logger.info("CoAP listening", metadata: ["host": "\(configuration.host)", "port": "\(bound)"])
            udpPort.bound(bound)
        } else {
            udpPort.stopped("no plain CoAP port is configured")
        }
        if let dtls = configuration.dtls {
            guard coap_dtls_is_supported() != 0 else {
                throw IoTError(.unavailable, "this libcoap has no DTLS support; install libcoap3 built with OpenSSL")
            }
            let counter = CoAPHandshakeCounter(onRefused: onRefused)
            handshakeCounter = counter
            coap_set_app_data(ctx, Unmanaged.passUnretained(self).toOpaque())
            coap_register_event_handler(ctx, coapListenerEventHandler)
            let table = CoAPPSKTable(keys: dtls.keys, hint: dtls.hint, handshakes: counter)
            psk = table
            var setup = coap_dtls_spsk_t()
            setup.version = UInt8(COAP_DTLS_SPSK_SETUP_VERSION)
            setup.validate_id_call_back = coapPSKIdentityCallback
            setup.id_call_back_arg = Unmanaged.passUnretained(table).toOpaque()
            setup.psk_info.hint = table.hint
            setup.psk_info.key = table.defaultKey
            guard coap_context_set_psk2(ctx, &setup) != 0 else {
                throw IoTError(.unavailable, "libcoap refused the DTLS PSK setup; check coap.dtls.keys")
            }
            let bound = try endpoint(ctx, port: dtls.port, proto: COAP_PROTO_DTLS)
            logger.info("CoAP DTLS listening", metadata: ["host": "\(configuration.host)", "port": "\(bound)"])
            dtlsPort.bound(bound)
        } else {
            dtlsPort.stopped("no DTLS port is configured")
        }
    }

    /// Binds an endpoint and returns its port (the kernel's pick when `port` is 0).
    private func endpoint(_ ctx: OpaquePointer, port requested: Int, proto: coap_proto_t) throws(IoTError) -> Int {
        let host = configuration.host
        return try Self.bindEndpoint(ctx, host: host, port: requested, proto: proto) { () throws(IoTError) in
            try Self.freeUDPPort(host: host)
        }
    }

    /// Picks for port 0 before binding, at most this many times.
    static let portPicks = 20

    /// Binds a libcoap endpoint on `host:port` and returns the port. libcoap 4.3.1 does not report the port
    /// the kernel picked for port 0 (its endpoint is opaque), so for port 0 `pick` names a port that was free
    /// a moment ago; another socket can take it before libcoap binds it, and then the next pick is tried.
    static func bindEndpoint(
        _ ctx: OpaquePointer, host: String, port requested: Int, proto: coap_proto_t, pick: () throws(IoTError) -> Int
    ) throws(IoTError) -> Int {
        var address = coap_address_t()
        coap_address_init(&address)
        address.addr.sin.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, host, &address.addr.sin.sin_addr) == 1 else {
            throw IoTError(.invalidArgument, "CoAP host \"\(host)\" is not an IPv4 address; use e.g. 0.0.0.0")
        }
        address.size = socklen_t(MemoryLayout<sockaddr_in>.size)
        var port = requested
        for _ in 0..<(requested == 0 ? portPicks : 1) {
            port = requested == 0 ? try pick() : requested
            address.addr.sin.sin_port = UInt16(port).bigEndian
            if coap_new_endpoint(ctx, &address, proto) != nil { return port }
        }
        throw IoTError(
            .unavailable,
            requested == 0
                ? "cannot bind CoAP to a free port on \(host) (UDP) after \(portPicks) tries; set a port"
                : "cannot bind CoAP to \(host):\(port) (UDP); is the port in use?")
    }

    /// A UDP port on `host` that was free a moment ago (the kernel picked it).
    static func freeUDPPort(host: String) throws(IoTError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        _ = inet_pton(AF_INET, host, &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard fd >= 0, ok else {
            throw IoTError(.unavailable, "cannot find a free UDP port on \(host) for CoAP; set a port")
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The unknown-resource handler: every POST/PUT to any path lands here (on the I/O thread).
    fileprivate func handle(
        session: OpaquePointer, request: OpaquePointer, query: UnsafePointer<coap_string_t>?, response: OpaquePointer
    ) {
        handled &+= 1
        let token = coap_pdu_get_token(request)
        if let async = coap_find_async(session, token) {
            // Triggered by `trigger`: the answer is ready. Without app data it is a retransmission of a request
            // still being ingested: say nothing, the first copy is answered.
            guard let data = coap_async_get_app_data(async) else { return }
            let reply = Unmanaged<CoAPReplyBox>.fromOpaque(data).takeRetainedValue().reply
            coap_async_set_app_data(async, nil)
            fill(response, reply)
            // libcoap frees a fired async itself once this handler returns (freeing it here is a double free).
            coap_session_release(session)
            pending -= 1
            return
        }
        let path = Self.uriPath(request)
        let queryText =
            query.map {
                String(decoding: UnsafeBufferPointer(start: $0.pointee.s, count: $0.pointee.length), as: UTF8.self)
            } ?? ""
        let route: CoAPTelemetryRoute
        do throws(IoTError) {
            route = try CoAPTelemetryRoute.parse(path: path, query: queryText)
        } catch {
            return refuse(response, error)
        }
        var length = 0
        var data: UnsafePointer<UInt8>?
        var offset = 0
        var total = 0
        _ = coap_get_data_large(request, &length, &data, &offset, &total)
        guard max(length, total) <= configuration.maxBodyBytes else {
            return refuse(
                response,
                IoTError(
                    .payloadTooLarge,
                    "the request body is over the limit of \(configuration.maxBodyBytes) bytes; send fewer records per request"
                ))
        }
        let (stopping, _) = shared.withLock { ($0.stopping, 0) }
        if stopping {
            return refuse(
                response,
                IoTError(.shutdown, "the CoAP listener is shutting down; retry later", retryAfterMillis: 1_000))
        }
        var incoming = CoAPIncoming(
            route: route, path: path, contentFormat: Self.contentFormat(request),
            payload: length > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: length)) : [],
            peer: "")
        // The common case (a known device, a cached token): parsed and journaled right here, answered at once.
        if let reply = onRequestNow(incoming) {
            return fill(response, reply)
        }
        guard pending < configuration.maxPendingRequests else {
            return refuse(
                response,
                IoTError(
                    .backpressure, "too many requests in flight (\(pending)); retry after Max-Age seconds",
                    retryAfterMillis: 1_000))
        }
        guard coap_register_async(session, request, 0) != nil else { return }
        coap_session_reference(session)
        pending += 1
        incoming.peer = Self.peerAddress(session)
        let tokenBytes = Array(UnsafeBufferPointer(start: token.s, count: token.length))
        let sessionPointer = CoAPSessionPointer(pointer: session)
        let onRequest = self.onRequest
        Task {
            let reply = await onRequest(incoming)
            self.complete(sessionPointer, token: tokenBytes, reply: reply)
        }
    }

    private func refuse(_ response: OpaquePointer, _ error: IoTError) {
        onRefused(error)
        fill(response, .error(error))
    }

    private func fill(_ response: OpaquePointer, _ reply: CoAPReply) {
        coap_pdu_set_code(response, ciot_coap_response_code(Int32(reply.code)))
        var buffer = [UInt8](repeating: 0, count: 4)
        if !reply.body.isEmpty {
            let n = coap_encode_var_safe(&buffer, 4, UInt32(CoAPContentFormat.json))
            coap_add_option(response, coap_option_num_t(COAP_OPTION_CONTENT_FORMAT), Int(n), buffer)
        }
        if let maxAge = reply.maxAge {
            let n = coap_encode_var_safe(&buffer, 4, UInt32(maxAge))
            coap_add_option(response, coap_option_num_t(COAP_OPTION_MAXAGE), Int(n), buffer)
        }
        if !reply.body.isEmpty { coap_add_data(response, reply.body.count, reply.body) }
    }

    private static func uriPath(_ request: OpaquePointer) -> String {
        guard let path = coap_get_uri_path(request) else { return "" }
        defer { coap_delete_string(path) }
        return String(decoding: UnsafeBufferPointer(start: path.pointee.s, count: path.pointee.length), as: UTF8.self)
    }

    private static func contentFormat(_ request: OpaquePointer) -> Int? {
        var iterator = coap_opt_iterator_t()
        guard let option = coap_check_option(request, coap_option_num_t(COAP_OPTION_CONTENT_FORMAT), &iterator) else {
            return nil
        }
        return Int(coap_decode_var_bytes(coap_opt_value(option), Int(coap_opt_length(option))))
    }

    private static func peerAddress(_ session: OpaquePointer) -> String {
        guard let remote = coap_session_get_addr_remote(session) else { return "" }
        var text = [CChar](repeating: 0, count: 64)
        var address = remote.pointee
        guard address.addr.sa.sa_family == sa_family_t(AF_INET) else { return "" }
        guard inet_ntop(AF_INET, &address.addr.sin.sin_addr, &text, 64) != nil else { return "" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// libcoap's request handler: a file-scope C function (never actor-isolated) that finds the server through
/// the resource's userdata.
private let coapTelemetryHandler: coap_method_handler_t = { resource, session, request, query, response in
    guard let resource, let session, let request, let response, let userdata = coap_resource_get_userdata(resource)
    else { return }
    Unmanaged<CoAPServer>.fromOpaque(userdata).takeUnretainedValue()
        .handle(session: session, request: request, query: query, response: response)
}

/// The PSK of a DTLS identity, or `nil` to fail the handshake.
private let coapPSKIdentityCallback: coap_dtls_id_callback_t = { identity, session, arg in
    guard let identity, let arg else { return nil }
    let table = Unmanaged<CoAPPSKTable>.fromOpaque(arg).takeUnretainedValue()
    let name = String(
        decoding: UnsafeBufferPointer(start: identity.pointee.s, count: identity.pointee.length), as: UTF8.self)
    let key = table.key(for: name)
    if key == nil, let session { table.handshakes?.unknownIdentity(session, name) }
    return key
}

/// PSK identities and keys copied into C memory that libcoap may read for the context's lifetime; freed when
/// the table is released after the context.
///
/// `@unchecked Sendable`: immutable after `init`; the C memory is only freed in `deinit`; ``handshakes`` is
/// only used on the I/O thread.
final class CoAPPSKTable: @unchecked Sendable {
    private let keys: [String: UnsafeMutablePointer<coap_bin_const_t>]
    private let allocations: [UnsafeMutableRawPointer]
    let hint: coap_bin_const_t
    let defaultKey: coap_bin_const_t
    /// Told about unknown identities (I/O thread only).
    let handshakes: CoAPHandshakeCounter?

    init(keys: [String: String], hint: String, handshakes: CoAPHandshakeCounter? = nil) {
        self.handshakes = handshakes
        var allocations: [UnsafeMutableRawPointer] = []
        func copy(_ text: String) -> coap_bin_const_t {
            let bytes = Array(text.utf8)
            let memory = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes.count), alignment: 1)
            memory.copyMemory(from: bytes, byteCount: bytes.count)
            allocations.append(memory)
            return coap_bin_const_t(length: bytes.count, s: memory.assumingMemoryBound(to: UInt8.self))
        }
        let hintBytes = copy(hint)
        var table: [String: UnsafeMutablePointer<coap_bin_const_t>] = [:]
        var first: coap_bin_const_t?
        for (identity, key) in keys.sorted(by: { $0.key < $1.key }) {
            let entry = UnsafeMutablePointer<coap_bin_const_t>.allocate(capacity: 1)
            entry.initialize(to: copy(key))
            allocations.append(UnsafeMutableRawPointer(entry))
            table[identity] = entry
            if first == nil { first = entry.pointee }
        }
        self.defaultKey = first ?? copy("")
        self.hint = hintBytes
        self.keys = table
        self.allocations = allocations
    }

    func key(for identity: String) -> UnsafePointer<coap_bin_const_t>? {
        keys[identity].map { UnsafePointer($0) }
    }

    deinit {
        for memory in allocations { memory.deallocate() }
    }
}

private final class CoAPReplyBox {
    let reply: CoAPReply
    init(_ reply: CoAPReply) { self.reply = reply }
}

/// A non-blocking, close-on-exec pipe whose read end wakes an I/O thread's `poll`.
func makeWakePipe() -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { fatalError("pipe() failed: errno \(errno); the process is out of file descriptors") }
    for fd in fds {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }
    return (fds[0], fds[1])
}
