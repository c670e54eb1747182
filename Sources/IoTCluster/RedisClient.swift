public import IoTCore
import NIOCore
import NIOPosix

/// One value of the Redis protocol (RESP2), as a reply arrives.
public enum RESPValue: Sendable, Hashable {
    /// `+OK`.
    case simple(String)
    /// `-ERR …`: the command failed.
    case error(String)
    /// `:42`.
    case integer(Int)
    /// `$…`: bytes, or `nil` for a missing value.
    case bulk([UInt8]?)
    /// `*…`: values, or `nil`.
    case array([RESPValue]?)

    /// The value as text: a simple string, bulk bytes (UTF-8) or an integer; `nil` otherwise.
    public var string: String? {
        switch self {
        case .simple(let s): s
        case .bulk(let b?): String(decoding: b, as: UTF8.self)
        case .integer(let i): String(i)
        default: nil
        }
    }

    /// The value as an integer, if it is one (or text of one).
    public var int: Int? {
        if case .integer(let i) = self { return i }
        return string.flatMap { Int($0) }
    }

    /// The elements of an array reply; empty for anything else.
    public var elements: [RESPValue] {
        if case .array(let a?) = self { return a }
        return []
    }

    /// An array reply of alternating fields and values (`HGETALL`) as a dictionary.
    public var fields: [String: String] {
        var out: [String: String] = [:]
        let e = elements
        var i = 0
        while i + 1 < e.count {
            if let k = e[i].string, let v = e[i + 1].string { out[k] = v }
            i += 2
        }
        return out
    }
}

/// A Redis client over one connection (RESP2 on SwiftNIO): commands in, replies out, in order.
///
/// The connection is made on first use, with `AUTH` and `SELECT` when the URL asks for them, and again after it
/// fails: a command that fails or takes longer than ``timeout`` closes it (the replies of commands sent before
/// are failed with it, so a late reply can never answer the wrong command), and the next command connects
/// anew. Meant for coordination (heartbeats, placements, claims), not for the data path.
///
/// ```swift
/// let redis = try RedisClient(url: "redis://127.0.0.1:6379/0")
/// _ = try await redis.command("SET", "iot:instance:a", "{}", "PX", "1500")
/// let members = try await redis.command("SMEMBERS", "iot:instances").elements
/// ```
public actor RedisClient {
    /// Where the server is: `redis://[:password@]host[:port][/db]`.
    public struct Endpoint: Sendable, Hashable {
        /// Host name or address.
        public var host: String
        /// TCP port (6379 by default).
        public var port: Int
        /// The database index (`SELECT`), 0 by default.
        public var database: Int
        /// The password (`AUTH`), if any.
        public var password: String?

        /// Reads a `redis://` URL.
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming what is wrong.
        public init(url: String, password: String? = nil) throws(IoTError) {
            guard url.hasPrefix("redis://") else {
                throw IoTError(
                    .invalidArgument, "the Redis URL '\(url)' must start with redis://, as redis://127.0.0.1:6379/0")
            }
            var rest = Substring(url.dropFirst("redis://".count))
            var urlPassword: String?
            if let at = rest.lastIndex(of: "@") {
                let userInfo = rest[..<at]
                urlPassword = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).last.map(
                    String.init)
                rest = rest[rest.index(after: at)...]
            }
            var database = 0
            if let slash = rest.firstIndex(of: "/") {
                let db = rest[rest.index(after: slash)...]
                guard db.isEmpty || Int(db) != nil else {
                    throw IoTError(
                        .invalidArgument, "the Redis URL '\(url)' names database '\(db)'; use a number, as /0")
                }
                database = Int(db) ?? 0
                rest = rest[..<slash]
            }
            var port = 6379
            if let colon = rest.lastIndex(of: ":") {
                guard let p = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(p) else {
                    throw IoTError(.invalidArgument, "the Redis URL '\(url)' has no valid port")
                }
                port = p
                rest = rest[..<colon]
            }
            guard !rest.isEmpty else { throw IoTError(.invalidArgument, "the Redis URL '\(url)' names no host") }
            host = String(rest)
            self.port = port
            self.database = database
            self.password = password ?? urlPassword.flatMap { $0.isEmpty ? nil : $0 }
        }
    }

    /// The server.
    public nonisolated let endpoint: Endpoint
    /// How long a command may take before the connection is given up. Default 2 s.
    public nonisolated let timeout: Duration
    private nonisolated var nioTimeout: TimeAmount { .milliseconds(timeout.inMilliseconds) }
    private var connection: (any Channel)?

    /// A client of the server at `url` (nothing connects before the first command).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a URL that is not `redis://…`.
    public init(url: String, password: String? = nil, timeout: Duration = .seconds(2)) throws(IoTError) {
        endpoint = try Endpoint(url: url, password: password)
        self.timeout = timeout
    }

    /// Sends one command and returns its reply.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unavailable`` when the server cannot be reached or does not answer
    ///   in time, ``IoTCore/IoTError/Code/internal`` for an error reply (`-ERR …`), with the server's words.
    @discardableResult
    public func command(_ arguments: String...) async throws(IoTError) -> RESPValue {
        try await command(arguments)
    }

    /// Sends one command (its words as an array) and returns its reply.
    ///
    /// - Throws: as ``command(_:)-(String...)``.
    @discardableResult
    public func command(_ arguments: [String]) async throws(IoTError) -> RESPValue {
        let reply = try await send(arguments)
        if case .error(let message) = reply {
            throw IoTError(.unavailable, "Redis refused \(arguments.first ?? ""): \(message)")
        }
        return reply
    }

    /// Closes the connection (the next command connects again).
    public func close() async {
        let c = connection
        connection = nil
        try? await c?.close()
    }

    private func send(_ arguments: [String]) async throws(IoTError) -> RESPValue {
        do {
            let channel = try await connected()
            let promise = channel.eventLoop.makePromise(of: RESPValue.self)
            let timer = channel.eventLoop.scheduleTask(in: nioTimeout) { [endpoint, timeout] in
                promise.fail(
                    IoTError(
                        .unavailable,
                        "Redis at \(endpoint.host):\(endpoint.port) did not answer within \(timeout.inMilliseconds) ms")
                )
                channel.close(promise: nil)
            }
            channel.writeAndFlush(RESPRequest(words: arguments, reply: promise), promise: nil)
            defer { timer.cancel() }
            return try await promise.futureResult.get()
        } catch {
            await close()
            if let e = error as? IoTError { throw e }
            throw IoTError(
                .unavailable,
                "Redis at \(endpoint.host):\(endpoint.port) cannot be reached (\(error)); check cluster.redis.url and that redis-server runs"
            )
        }
    }

    private func connected() async throws -> any Channel {
        if let connection, connection.isActive { return connection }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(nioTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
                    try channel.pipeline.syncOperations.addHandler(RESPHandler())
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        connection = channel
        if let password = endpoint.password { try await checked(["AUTH", password], on: channel) }
        if endpoint.database != 0 { try await checked(["SELECT", String(endpoint.database)], on: channel) }
        return channel
    }

    private func checked(_ words: [String], on channel: any Channel) async throws {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.writeAndFlush(RESPRequest(words: words, reply: promise), promise: nil)
        if case .error(let message) = try await promise.futureResult.get() {
            throw IoTError(.unauthorized, "Redis refused \(words[0]): \(message); check cluster.redis")
        }
    }
}

/// A command and where its reply goes.
struct RESPRequest: Sendable {
    var words: [String]
    var reply: EventLoopPromise<RESPValue>
}

/// Writes commands as RESP arrays of bulk strings and hands each reply to the oldest command waiting.
final class RESPHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        buffer.writeString("*\(request.words.count)\r\n")
        for word in request.words {
            buffer.writeString("$\(word.utf8.count)\r\n")
            buffer.writeString(word)
            buffer.writeString("\r\n")
        }
        waiting.append(request.reply)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        if let first = waiting.popFirst() { first.succeed(value) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(IoTError(.unavailable, "the Redis connection closed"))
        context.fireChannelInactive()
    }

    private func failAll(_ error: any Error) {
        while let p = waiting.popFirst() { p.fail(error) }
    }
}

/// Cuts RESP2 replies out of the byte stream.
struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var copy = buffer
        guard let value = try Self.parse(&copy) else { return .needMoreData }
        buffer.moveReaderIndex(to: copy.readerIndex)
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    /// One value from the front of `buffer`, or `nil` when it is not all there yet.
    static func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self), let line = readLine(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"): return .simple(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let n = Int(line) else { throw IoTError(.unavailable, "Redis sent a bad integer '\(line)'") }
            return .integer(n)
        case UInt8(ascii: "$"):
            guard let n = Int(line) else { throw IoTError(.unavailable, "Redis sent a bad length '\(line)'") }
            if n < 0 { return .bulk(nil) }
            guard buffer.readableBytes >= n + 2, let bytes = buffer.readBytes(length: n) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .bulk(bytes)
        case UInt8(ascii: "*"):
            guard let n = Int(line) else { throw IoTError(.unavailable, "Redis sent a bad count '\(line)'") }
            if n < 0 { return .array(nil) }
            var values: [RESPValue] = []
            values.reserveCapacity(n)
            for _ in 0..<n {
                guard let v = try parse(&buffer) else { return nil }
                values.append(v)
            }
            return .array(values)
        default:
            throw IoTError(.unavailable, "Redis sent an unknown reply type \(type)")
        }
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")), cr + 1 < view.endIndex else { return nil }
        let length = cr - view.startIndex
        let line = buffer.readString(length: length)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}
