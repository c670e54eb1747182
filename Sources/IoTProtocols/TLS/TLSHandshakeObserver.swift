import IoTCore
import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind the TLS handler of a device listener and reports a handshake that fails (once per
/// connection), so that every refused connection is counted; errors after the handshake (an unclean
/// shutdown) are not refusals and are not reported.
final class TLSHandshakeObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let onFailure: @Sendable (IoTError) -> Void
    private var settled = false

    /// `onFailure` gets the refusal (``IoTCore/IoTError/Code/unauthorized`` for a client certificate that was
    /// missing or did not verify, ``IoTCore/IoTError/Code/malformedPayload`` otherwise).
    init(onFailure: @escaping @Sendable (IoTError) -> Void) {
        self.onFailure = onFailure
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls { settled = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !settled, error is NIOSSLError || error is BoringSSLError {
            settled = true
            onFailure(Self.refusal(error))
        }
        context.fireErrorCaught(error)
    }

    static func refusal(_ error: any Error) -> IoTError {
        let text = String(describing: error)
        if text.uppercased().contains("CERTIFICATE") {
            return IoTError(
                .unauthorized,
                "TLS handshake refused: the client certificate is missing, expired or not issued by the listener's client CA (\(text))"
            )
        }
        return IoTError(
            .malformedPayload, "TLS handshake failed (\(text)); this listener speaks TLS 1.2 or later only")
    }
}
