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
    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, peerKey: String, address: String) async {
        let decision = handoff.withLock { $0.removeValue(forKey: peerKey) }
        guard case .success(let identity)? = decision else {
            var code = 4401
            var reason = "unauthorized: not authenticated"
            if case .failure(let error)? = decision {
                code = error.code == .rateLimited ? 4429 : error.code == .forbidden ? 4403 : 4401
                reason = Self.closeReason(error)
            }
            try? await outbound.close(WebSocketErrorCode(codeNumber: code), reason: reason)
            // Wait for the peer's close (or the close timeout) so the frame is delivered.
            do { for try await _ in inbound {} } catch {}
            return
        }
        let session = sessions.register(
            identity, transport: name, address: address,
            send: { payload in
                try await outbound.write(.text(#"{"type":"downlink","data":"# + String(decoding: payload, as: UTF8.self) + "}"))
            },
            close: { try? await outbound.close(.policyViolation, reason: "credentials revoked") })
        defer { sessions.unregister(session) }
        let activity = Activity()
        let idleLimit = Duration.milliseconds(configuration.idleTimeoutMillis)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    let idle = activity.idle
                    if idle >= idleLimit {
                        try? await outbound.close(
                            .goingAway, reason: "no message for \(self.configuration.idleTimeoutMillis / 1000) s")
                        return
                    }
                    do { try await Task.sleep(for: min(idleLimit - idle, .seconds(1)) + .milliseconds(10)) } catch { return }
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
        do {
            for try await message in inbound.messages(maxSize: configuration.maxMessageBytes * 4) {
                activity.touch()
                number += 1
                let payload: [UInt8]
                switch message {
                case .text(let text): payload = Array(text.utf8)
                case .binary(let buffer): payload = Array(buffer.readableBytesView)
                }
                let result: Result<Receipt, IoTError>
                if payload.count > configuration.maxMessageBytes {
                    let error = IoTError(
                        .payloadTooLarge,
                        "message of \(payload.count) bytes exceeds \(configuration.maxMessageBytes); send smaller messages")
                    ingestor.recordRejected(transport: name, error: error)
                    result = .failure(error)
                } else {
                    let inboundMessage = InboundMessage(transport: name, deviceUID: identity.deviceUID, payload: payload)
                    do {
                        result = .success(try await ingestor.ingest(inboundMessage, parser: parser, identity: identity))
                    } catch {
                        result = .failure(error)  // counted by the ingestor
                    }
                }
                try await outbound.write(.text(Self.ack(number, result)))
            }
        } catch {
            logger.debug("WebSocket connection ended", metadata: ["error": "\(error)", "device": "\(identity)"])
        }
    }

    /// `<code>: <message>`, cut to the 123 bytes a close reason may hold.
    static func closeReason(_ error: IoTError) -> String {
        var reason = "\(error.code.name): \(error.message)"
        while reason.utf8.count > 123 { reason.removeLast() }
        return reason
    }

    /// The ack frame of message `n`.
    static func ack(_ n: Int, _ result: Result<Receipt, IoTError>) -> String {
        switch result {
        case .success(let r):
            return #"{"type":"ack","n":\#(n),"ok":true,"sequence":\#(r.sequence),"records":\#(r.records),"points":\#(r.points)}"#
        case .failure(let e):
            let retry = e.retryAfterMillis.map { #","retryAfterMillis":\#($0)"# } ?? ""
            return #"{"type":"ack","n":\#(n),"ok":false,"error":\#(jsonString(e.code.name)),"message":\#(jsonString(e.message))\#(retry)}"#
        }
    }
}
