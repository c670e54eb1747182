import Foundation
import HTTPTypes
import HummingbirdCore
import IoTCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The two telemetry routes, as the event loop reads them from a request's path.
enum TelemetryRoute: Equatable {
    /// `POST /api/v1/devices/{uid}/telemetry`.
    case device(uid: String)
    /// `POST /api/v1/{token}/telemetry` (ThingsBoard's device API).
    case thingsBoard(token: String)

    /// The route of `path` when it is one of the two and needs nothing the router would do for it: no
    /// percent-encoding, query or fragment, no empty or extra segment. `nil` otherwise, and the router
    /// answers it.
    init?(path: String) {
        let prefix = "/api/v1/"
        let suffix = "/telemetry"
        guard path.utf8.count > prefix.utf8.count + suffix.utf8.count, path.hasPrefix(prefix), path.hasSuffix(suffix)
        else { return nil }
        let middle = path.utf8.dropFirst(prefix.utf8.count).dropLast(suffix.utf8.count)
        guard !middle.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") })
        else { return nil }
        let devices = "devices/".utf8
        if middle.starts(with: devices) {
            let uid = middle.dropFirst(devices.count)
            guard !uid.isEmpty, !uid.contains(UInt8(ascii: "/")) else { return nil }
            self = .device(uid: String(Substring(uid)))
        } else {
            guard !middle.contains(UInt8(ascii: "/")) else { return nil }
            self = .thingsBoard(token: String(Substring(middle)))
        }
    }
}

/// Answers telemetry requests on the connection's event loop when the gateway can store them from its
/// caches (every request of a device after its first, within the cache lifetimes), and hands every other
/// request to the router unchanged.
///
/// A request through the router costs a hop to Swift's cooperative pool and back, its request and response
/// objects, the router and its middleware: more CPU than the ingest itself. Here a request is read
/// into one buffer and submitted with ``IoTCore/IngestGateway/submitBlocking(_:onCacheMiss:)`` and
/// ``IoTCore/IngestCacheMiss/deferToAsync``, as libcoap's thread does, which never waits for a task: the
/// only wait is the journal's own write. The replies are the router's: the same status, headers and body.
///
/// The router answers what this handler does not: a cache miss (the gateway counted nothing, so the
/// router's submission is the only one), a path that needs decoding, a body over the limit, a client
/// certificate in place of `Authorization`, `Expect` and `Connection: close`. It also answers every request
/// pipelined behind one it holds, until that one's response has ended, so replies stay in request order.
///
/// It sits behind Hummingbird's connection state handler, so that the idle timeout and a graceful
/// shutdown see every request, and in front of the channel's async side.
final class TelemetryFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// Reading a request this handler will answer (or hand on when the gateway defers it).
        case reading(HTTPRequest, TelemetryRoute, body: ByteBuffer?)
        /// Passing a request's parts to the router until its end.
        case handingOn
    }

    private let transport: HTTPIngestTransport
    private var state = State.idle
    /// Requests handed to the router whose response has not ended.
    private var routerResponses = 0
    /// A read held back while the channel is not writable (a client that sends and does not read).
    private var readPending = false
    /// The peer's IP address, read once.
    private var peer: String?

    init(transport: HTTPIngestTransport) {
        self.transport = transport
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch state {
        case .idle:
            guard case .head(let head) = part else {
                context.fireChannelRead(data)
                return
            }
            if routerResponses == 0, let route = answerable(head) {
                state = .reading(head, route, body: nil)
            } else {
                routerResponses += 1
                state = .handingOn
                context.fireChannelRead(data)
            }
        case .reading(let head, let route, var body):
            switch part {
            case .head:
                // The decoder sends no head before an end; hand the request on as it is.
                handOn(context, head, body)
                state = .handingOn
                context.fireChannelRead(data)
            case .body(let chunk):
                state = .idle  // `body` is the buffer's only reference while it grows
                guard (body?.readableBytes ?? 0) + chunk.readableBytes <= transport.configuration.maxBodyBytes else {
                    // The router refuses it (413) and reads the rest.
                    handOn(context, head, body)
                    state = .handingOn
                    context.fireChannelRead(data)
                    return
                }
                if body == nil {
                    body = chunk
                } else {
                    body!.writeImmutableBuffer(chunk)
                }
                state = .reading(head, route, body: body)
            case .end:
                state = .idle
                if let reply = answer(head, route, body, context: context) {
                    write(reply, context: context)
                } else {
                    handOn(context, head, body)
                    context.fireChannelRead(data)
                }
            }
        case .handingOn:
            if case .end = part { state = .idle }
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), routerResponses > 0 { routerResponses -= 1 }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if readPending, context.channel.isWritable {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Answering

    /// The route of a request this handler may answer, or `nil` for the router's.
    private func answerable(_ head: HTTPRequest) -> TelemetryRoute? {
        guard head.method == .post, let path = head.path, let route = TelemetryRoute(path: path) else { return nil }
        let fields = head.headerFields
        if fields[.expect] != nil { return nil }
        if let connection = fields[.connection], connection.lowercased().contains("close") { return nil }
        if let declared = fields[.contentLength],
            Int(declared).map({ $0 > transport.configuration.maxBodyBytes }) ?? true
        {
            return nil
        }
        if case .device = route, fields[.authorization] == nil { return nil }  // refused or a client certificate
        return route
    }

    /// Submits a request and returns its reply, or `nil` when the gateway deferred it (nothing counted).
    private func answer(
        _ head: HTTPRequest, _ route: TelemetryRoute, _ body: ByteBuffer?, context: ChannelHandlerContext
    )
        -> IngestReply?
    {
        let fields = head.headerFields
        let path = head.path ?? ""
        let message = InboundMessage(
            transport: transport.name, topic: path, contentType: HTTPIngestTransport.mediaType(fields[.contentType]),
            payload: body.map { Array($0.readableBytesView) } ?? [])
        let address = clientAddress(fields, context: context)
        let submission: IngestSubmission
        switch route {
        case .device(let uid):
            guard let credential = HTTPIngestTransport.credential(fields[.authorization]) else { return nil }
            submission = transport.deviceSubmission(message, uid: uid, credential: credential, address: address)
        case .thingsBoard(let token):
            submission = transport.thingsBoardSubmission(message, token: token, address: address)
        }
        let outcome = transport.gateway.submitBlocking([submission], onCacheMiss: .deferToAsync)[0]
        if case .deferred = outcome { return nil }
        transport.eventLoopAnswers.add(1, ordering: .relaxed)
        return transport.reply(to: outcome, path: path) { receipt in
            if case .device = route { IngestResponses.receiptReply(receipt) } else { IngestResponses.emptyReply }
        }
    }

    /// The client's address: the peer, or the client a trusted proxy forwarded for (as
    /// ``IoTListener/ForwardedForMiddleware`` reads it for the router).
    private func clientAddress(_ fields: HTTPFields, context: ChannelHandlerContext) -> String {
        let peer = self.peer ?? context.channel.remoteAddress?.ipAddress ?? ""
        self.peer = peer
        return transport.configuration.limits.trustedProxies.client(peer: peer, fields: fields)
    }

    /// Passes a request read so far to the router, as it arrived but for its body in one part.
    private func handOn(_ context: ChannelHandlerContext, _ head: HTTPRequest, _ body: ByteBuffer?) {
        routerResponses += 1
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if let body { context.fireChannelRead(wrapInboundOut(.body(body))) }
    }

    private func write(_ reply: IngestReply, context: ChannelHandlerContext) {
        var headers = reply.headers
        headers[.contentLength] = String(reply.body.readableBytes)
        headers[.date] = HTTPDate.now()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: reply.status, headerFields: headers))), promise: nil)
        if reply.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(reply.body)), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// The `Date` header's value (RFC 9110's IMF-fixdate), formatted once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Now, as `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func now() -> String {
        let second = time(nil)
        return cache.withLock { cached in
            if cached.second != second { cached = (second, format(second)) }
            return cached.text
        }
    }

    static func format(_ second: Int) -> String {
        var seconds = second
        var t = tm()
        gmtime_r(&seconds, &t)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return
            "\(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(t.tm_year + 1900) \(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) GMT"
    }
}

/// Hummingbird's HTTP/1 child channel with a ``TelemetryFastPath`` behind its connection state handler.
struct TelemetryChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let base: HTTP1Channel
    let transport: HTTPIngestTransport

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(TelemetryFastPath(transport: transport), position: .after(state))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
