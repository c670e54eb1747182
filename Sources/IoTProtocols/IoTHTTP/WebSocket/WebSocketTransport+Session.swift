import Hummingbird
import HummingbirdWebSocket
import IoTCore
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// The time of a connection's last message, shared with its idle watcher.
private final class Activity: Sendable {
    private let last = Mutex<ContinuousClock.Instant>(.now)
    func touch() { last.withLock { $0 = .now } }
    var idle: Duration { ContinuousClock.now - last.withLock { $0 } }
}

extension WebSocketTransport {
    /// Serves one upgraded connection until it closes.
    func serve(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, peerKey: String, address: String,
        channel: any Channel
    ) async {
        await watchOversizeFrames(on: channel)
        // A refused credential never gets here (it is answered before the upgrade); a connection without an
        // accepted one is closed.
        guard let identity = handoff.withLock({ $0.removeValue(forKey: peerKey) }) else {
            try? await outbound.close(WebSocketErrorCode(codeNumber: 4401), reason: "unauthorized: not authenticated")
            // Wait for the peer's close (or the close timeout) so the frame is delivered.
            do { for try await _ in inbound {} } catch {}
            return
        }
        let session = sessions.register(
            identity, transport: name, address: address,
            send: { payload in
                try await outbound.write(
                    .text(#"{"type":"downlink","data":"# + String(decoding: payload, as: UTF8.self) + "}"))
            },
            close: { try? await outbound.close(.policyViolation, reason: "credentials revoked") })
        defer { sessions.unregister(session) }
        let activity = Activity()
        let idleLimit = configuration.idleTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    let idle = activity.idle
                    if idle >= idleLimit {
                        try? await outbound.close(
                            .goingAway,
                            reason: "no message for \(self.configuration.idleTimeout.inMilliseconds / 1000) s")
                        return
                    }
                    do { try await Task.sleep(for: min(idleLimit - idle, .seconds(1)) + .milliseconds(10)) } catch {
                        return
                    }
                }
            }
            await self.receive(inbound: inbound, outbound: outbound, identity: identity, activity: activity)
            group.cancelAll()
        }
    }

    private func receive(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, identity: DeviceIdentity, activity: Activity
    ) async {
        var number = 0
        let limit = configuration.maxMessageBytes
        // Messages are assembled here rather than with `messages(maxSize:)`, which ends the connection on a
        // message over its limit: a message over ``Configuration/maxMessageBytes``, in however many frames,
        // is counted, answered with an error and skipped, and the connection carries on. Only the bytes up
        // to the limit are kept.
        var assembled: [UInt8] = []
        var size = 0
        do {
            for try await frame in inbound {
                activity.touch()
                if frame.opcode != .continuation {
                    assembled.removeAll(keepingCapacity: true)
                    size = 0
                }
                size += frame.data.readableBytes
                if size <= limit { assembled.append(contentsOf: frame.data.readableBytesView) }
                guard frame.fin else { continue }
                number += 1
                let payload = assembled
                let payloadSize = size
                assembled.removeAll(keepingCapacity: true)
                size = 0
                let submission: IngestSubmission
                if payloadSize > limit {
                    submission = .refused(
                        IoTError(
                            .payloadTooLarge,
                            "message of \(payloadSize) bytes exceeds \(limit); send smaller messages"),
                        transport: name, from: .device(identity))
                } else {
                    submission = .message(
                        InboundMessage(transport: name, deviceUID: identity.deviceUID, payload: payload),
                        parser: parser, from: .device(identity))
                }
                let result = await gateway.submit(submission).result  // counted by the gateway
                try await outbound.write(.text(Self.ack(number, result)))
            }
        } catch {
            logger.debug("WebSocket connection ended", metadata: ["error": "\(error)", "device": "\(identity)"])
        }
    }

    /// Counts a frame over the WebSocket layer's frame limit (four times ``Configuration/maxMessageBytes``):
    /// the layer refuses it by closing the connection with 1009 without telling the handler, so the close
    /// frame it sends is what is observed. Installed before the first frame is read, so the close frame of
    /// any oversize frame passes it.
    private func watchOversizeFrames(on channel: any Channel) async {
        let gateway = self.gateway
        let name = self.name
        let limit = configuration.maxMessageBytes * 4
        do {
            try await channel.eventLoop.submit {
                let encoder = try channel.pipeline.syncOperations.handler(type: WebSocketFrameEncoder.self)
                try channel.pipeline.syncOperations.addHandler(
                    OversizeFrameObserver {
                        let error = IoTError(
                            .payloadTooLarge,
                            "a WebSocket frame over \(limit) bytes; the connection was closed with 1009, send smaller messages"
                        )
                        _ = gateway.submitBlocking([.refused(error, transport: name)], onCacheMiss: .deferToAsync)
                    }, position: .after(encoder))
            }.get()
        } catch {
            logger.debug("cannot watch for oversize WebSocket frames", metadata: ["error": "\(error)"])
        }
    }

    /// The ack frame of message `n`.
    static func ack(_ n: Int, _ result: Result<Receipt, IoTError>) -> String {
        switch result {
        case .success(let r):
            return
                #"{"type":"ack","n":\#(n),"ok":true,"sequence":\#(r.sequence),"records":\#(r.records),"points":\#(r.points)}"#
        case .failure(let e):
            let retry = e.retryAfterMillis.map { #","retryAfterMillis":\#($0)"# } ?? ""
            return
                #"{"type":"ack","n":\#(n),"ok":false,"error":\#(jsonString(e.code.name)),"message":\#(jsonString(e.message))\#(retry)}"#
        }
    }
}

/// Sees the frames the server writes; reports the first close frame with 1009 (message too big).
final class OversizeFrameObserver: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let onOversize: @Sendable () -> Void
    private var reported = false

    init(onOversize: @escaping @Sendable () -> Void) {
        self.onOversize = onOversize
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        if !reported, frame.opcode == .connectionClose {
            var data = frame.unmaskedData
            if data.readInteger(as: UInt16.self) == 1009 {
                reported = true
                onOversize()
            }
        }
        context.write(data, promise: promise)
    }
}
