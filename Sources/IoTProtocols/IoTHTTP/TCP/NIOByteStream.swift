import IoTCore
import NIOCore

/// A ``IoTCore/ByteStream`` over one accepted SwiftNIO connection (plain TCP or TLS).
///
/// `@unchecked Sendable`: ``read()`` is called by one task at a time (the ``IoTCore/StreamTransport``
/// that serves the connection), which is the only user of `iterator`; writes go through NIO's
/// thread-safe outbound writer, and closing goes through the channel, which is thread-safe.
final class NIOByteStream: ByteStream, @unchecked Sendable {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var pending: [UInt8]
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let channel: any Channel

    init(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        channel: any Channel
    ) {
        self.iterator = inbound.makeAsyncIterator()
        self.outbound = outbound
        self.channel = channel
        self.pending = []
    }

    /// Bytes that the next ``read()`` returns before reading the socket again (the rest of a handshake
    /// chunk).
    func unread(_ bytes: [UInt8]) {
        pending = bytes + pending
    }

    func read() async throws -> [UInt8]? {
        if !pending.isEmpty {
            defer { pending = [] }
            return pending
        }
        do {
            guard let buffer = try await iterator.next() else { return nil }
            return Array(buffer.readableBytesView)
        } catch {
            return nil  // reset by peer, idle close, TLS failure: the stream has ended
        }
    }

    func write(_ bytes: [UInt8]) async throws {
        try await outbound.write(ByteBuffer(bytes: bytes))
    }

    func close() async {
        try? await channel.close()
    }
}

/// Closes a connection when NIO's `IdleStateHandler` reports that nothing was read for the idle timeout.
final class IdleCloseHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
