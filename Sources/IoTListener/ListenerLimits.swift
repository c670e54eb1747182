import HTTPTypes
import HummingbirdCore
public import IoTCore
import Logging
import Metrics
package import NIOCore
import NIOHTTPTypes
import Synchronization

/// What one TCP listener (HTTP, WebSocket, the management API) allows a connection: how long it may stay
/// idle, how long it may take to send a request head, and how many connections it may hold, overall and
/// per client address. A connection over a cap is closed as soon as it is accepted; one whose request head
/// (TLS handshake included) does not arrive in time is closed, however slowly it trickles bytes.
public struct ListenerLimits: Sendable, Hashable {
    /// A connection that reads nothing for this long is closed. Default 60 s (`idleTimeoutMillis: 60000` in a
    /// file).
    public var idleTimeout: Duration
    /// A request head must be complete within this long of the connection's start (TLS handshake included)
    /// or of the first byte of the next request on a kept-alive connection; the deadline is not moved by the
    /// bytes that arrive. Default 10 s (`headerTimeoutMillis` in a file).
    public var headerTimeout: Duration
    /// Connections open at once, at most. Default 10 000.
    public var maxConnections: Int
    /// Connections open at once from one client address, at most. Default 1 000 (devices behind one NAT
    /// share an address).
    public var maxConnectionsPerAddress: Int
    /// The reverse proxies whose `X-Forwarded-For` names the client (``TrustedProxies``); each is exempt from
    /// ``maxConnectionsPerAddress``. Default none.
    public var trustedProxies: TrustedProxies

    /// Creates limits; every argument has the default documented on its property.
    public init(
        idleTimeout: Duration = .seconds(60), headerTimeout: Duration = .seconds(10), maxConnections: Int = 10_000,
        maxConnectionsPerAddress: Int = 1_000, trustedProxies: TrustedProxies = TrustedProxies()
    ) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.trustedProxies = trustedProxies
    }

    /// Checks the ranges: timeouts from 1 ms to 10 years, caps of at least 1.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the field.
    public func validate() throws(IoTError) {
        try IoTLimits.checkDuration(idleTimeout, "idleTimeoutMillis")
        try IoTLimits.checkDuration(headerTimeout, "headerTimeoutMillis")
        guard maxConnections >= 1 else { throw IoTError(.invalidArgument, "maxConnections must be at least 1") }
        guard maxConnectionsPerAddress >= 1 else {
            throw IoTError(.invalidArgument, "maxConnectionsPerAddress must be at least 1")
        }
    }
}

extension ListenerLimits: Codable {
    private enum CodingKeys: String, CodingKey {
        case idleTimeoutMillis, headerTimeoutMillis, maxConnections, maxConnectionsPerAddress, trustedProxies
    }

    /// Decodes the limits; a key left out keeps its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ListenerLimits()
        self.init(
            idleTimeout: try c.decodeMillis(.idleTimeoutMillis, or: d.idleTimeout),
            headerTimeout: try c.decodeMillis(.headerTimeoutMillis, or: d.headerTimeout),
            maxConnections: try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? d.maxConnections,
            maxConnectionsPerAddress: try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerAddress)
                ?? d.maxConnectionsPerAddress,
            trustedProxies: try c.decodeIfPresent(TrustedProxies.self, forKey: .trustedProxies) ?? d.trustedProxies)
    }

    /// Encodes the limits under the keys a file uses (durations in milliseconds).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeMillis(idleTimeout, forKey: .idleTimeoutMillis)
        try c.encodeMillis(headerTimeout, forKey: .headerTimeoutMillis)
        try c.encode(maxConnections, forKey: .maxConnections)
        try c.encode(maxConnectionsPerAddress, forKey: .maxConnectionsPerAddress)
        if !trustedProxies.isEmpty { try c.encode(trustedProxies, forKey: .trustedProxies) }
    }
}

/// Counts a listener's open connections, overall and per client address.
public final class ConnectionLimiter: Sendable {
    private struct Counts {
        var total = 0
        var byAddress: [String: Int] = [:]
    }
    private let counts = Mutex(Counts())
    /// The limits in force.
    public let limits: ListenerLimits
    private let refused: Counter

    /// Creates a limiter for the listener named `listener` (a label of `iot_connections_refused_total`).
    public init(limits: ListenerLimits, listener: String) {
        self.limits = limits
        self.refused = Counter(label: "iot_connections_refused_total", dimensions: [("listener", listener)])
    }

    /// Takes a place for a connection from `address`; `false` when a cap is reached (counted). A trusted proxy
    /// (``ListenerLimits/trustedProxies``) is held to the overall cap only.
    public func acquire(_ address: String) -> Bool {
        let granted = counts.withLock { c -> Bool in
            guard
                c.total < limits.maxConnections,
                c.byAddress[address, default: 0] < limits.maxConnectionsPerAddress
                    || limits.trustedProxies.contains(address)
            else { return false }
            c.total += 1
            c.byAddress[address, default: 0] += 1
            return true
        }
        if !granted { refused.increment() }
        return granted
    }

    /// Gives back the place of a connection from `address`.
    public func release(_ address: String) {
        counts.withLock { c in
            c.total -= 1
            if let n = c.byAddress[address], n > 1 { c.byAddress[address] = n - 1 } else { c.byAddress[address] = nil }
        }
    }

    /// Connections open now.
    public var open: Int { counts.withLock { $0.total } }
}

/// The state a connection's two guard handlers share (both run on the channel's event loop).
final class RequestHeadState {
    /// A request head is complete and its response not yet sent (or the connection was upgraded).
    var inRequest = false
    /// The post-codec watcher is in the pipeline and tracks heads itself.
    var watched = false
    var deadline: Scheduled<Void>?
    /// The last four bytes seen while scanning for the end of the first head.
    var tail: UInt32 = 0
}

/// Below the HTTP codec: takes a place in the ``ConnectionLimiter`` (or closes the connection), and closes
/// the connection when a request head is not complete by its deadline.
package final class ConnectionGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    let limiter: ConnectionLimiter
    let state = RequestHeadState()
    private var address: String?
    private var refused = false
    /// The last bytes of a head (`\r\n\r\n` for HTTP, `\n` for a TCP handshake line), big-endian, and
    /// which of the four tracked bytes they take.
    private let headEnd: UInt32
    private let headEndMask: UInt32

    /// - Parameter handshakeLine: the head is one line (the TCP listener's handshake), not an HTTP head.
    package init(limiter: ConnectionLimiter, handshakeLine: Bool = false) {
        self.limiter = limiter
        (headEnd, headEndMask) = handshakeLine ? (0x0A, 0xFF) : (0x0D0A_0D0A, 0xFFFF_FFFF)
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    package func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    /// Takes the connection's place (or closes it) and arms the first head's deadline (a TLS handshake
    /// before it included).
    private func start(_ context: ChannelHandlerContext) {
        guard address == nil, !refused else { return }
        let address = context.channel.remoteAddress?.ipAddress ?? ""
        guard limiter.acquire(address) else {
            refused = true
            context.channel.close(promise: nil)
            return
        }
        self.address = address
        arm(context)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        state.deadline?.cancel()
        if let address {
            limiter.release(address)
            self.address = nil
        }
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !state.inRequest {
            if state.deadline == nil { arm(context) }
            if !state.watched {
                // No watcher above the codec yet (an upgradable pipeline before its first request): find the
                // end of the head in the bytes.
                let buffer = unwrapInboundIn(data)
                for byte in buffer.readableBytesView {
                    if (byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D) || byte == 0x7F {
                        // A control character (NUL, …) in a head: HTTP allows none. The upgradable pipeline
                        // does not answer its own decoding errors, so answer here instead of leaving the
                        // connection hanging.
                        refuseHead(context)
                        return
                    }
                    state.tail = state.tail << 8 | UInt32(byte)
                    if state.tail & headEndMask == headEnd {
                        state.inRequest = true
                        state.deadline?.cancel()
                        state.deadline = nil
                        break
                    }
                }
            }
        }
        context.fireChannelRead(data)
    }

    /// Answers 400 and closes the connection.
    private func refuseHead(_ context: ChannelHandlerContext) {
        state.deadline?.cancel()
        state.deadline = nil
        state.inRequest = true
        let body =
            #"{"error":"malformed_payload","message":"the request head holds a control character; HTTP allows none"}"#
        let text =
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        let channel = context.channel
        context.writeAndFlush(NIOAny(ByteBuffer(string: text))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Closes the connection unless a head completes within the header timeout.
    func arm(_ context: ChannelHandlerContext) {
        state.deadline?.cancel()
        let channel = context.channel
        state.deadline = context.eventLoop.scheduleTask(in: .nanoseconds(limiter.limits.headerTimeout.inNanoseconds)) {
            channel.close(promise: nil)
        }
    }
}

/// Above the HTTP codec: a request head ends its deadline, the end of its response starts waiting for the
/// next one (armed by the next byte, so an idle kept-alive connection is left to the idle timeout).
final class RequestHeadWatcher: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var state: RequestHeadState?

    func handlerAdded(context: ChannelHandlerContext) {
        state = try? context.pipeline.syncOperations.handler(type: ConnectionGuardHandler.self).state
        state?.watched = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data), let state {
            state.inRequest = true
            state.deadline?.cancel()
            state.deadline = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { state?.inRequest = false }
        context.write(data, promise: promise)
    }
}

/// A ``HummingbirdCore/ServerChildChannel`` with the ``ConnectionGuardHandler`` in front of `base`'s
/// handlers (inside TLS when the listener has it, so that it sees plain bytes).
struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let limiter: ConnectionLimiter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionGuardHandler(limiter: limiter))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ListenerLimits {
    /// Hummingbird's HTTP/1 settings for these limits: the idle timeout and the head watcher.
    func http1Configuration() -> HTTP1Channel.Configuration {
        HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestHeadWatcher()], idleTimeout: .nanoseconds(idleTimeout.inNanoseconds))
    }
}
