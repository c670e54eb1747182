package import IoTCore
package import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind the TLS handler of a device listener and reports a handshake that fails (once per
/// connection), so that every refused connection is counted; errors after the handshake (an unclean
/// shutdown) are not refusals and are not reported.
package final class TLSHandshakeObserver: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = NIOAny

    private let onFailure: @Sendable (IoTError) -> Void
    private var settled = false

    /// `onFailure` gets the refusal (``IoTCore/IoTError/Code/unauthorized`` for a client certificate that was
    /// missing or did not verify, ``IoTCore/IoTError/Code/malformedPayload`` otherwise).
    package init(onFailure: @escaping @Sendable (IoTError) -> Void) {
        self.onFailure = onFailure
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls { settled = true }
        context.fireUserInboundEventTriggered(event)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
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

/// On a listener's server channel (Hummingbird builds the connection pipelines, so the observer cannot be
/// added there directly): gives each accepted connection a ``TLSObserverAnchor`` at the front of its
/// pipeline, before the connection is read.
package final class TLSAcceptWatcher: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = any Channel
    package typealias InboundOut = any Channel

    private let onFailure: @Sendable (IoTError) -> Void

    init(onFailure: @escaping @Sendable (IoTError) -> Void) {
        self.onFailure = onFailure
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        let onFailure = self.onFailure
        child.eventLoop.execute {
            try? child.pipeline.syncOperations.addHandler(TLSObserverAnchor(onFailure: onFailure), position: .first)
        }
        context.fireChannelRead(data)
    }

    /// Installs the watcher on a listener's server channel.
    package static func install(on server: any Channel, onFailure: @escaping @Sendable (IoTError) -> Void) async {
        try? await server.eventLoop.submit {
            try server.pipeline.syncOperations.addHandler(TLSAcceptWatcher(onFailure: onFailure), position: .first)
        }.get()
    }
}

/// At the front of a connection's pipeline: when the first bytes arrive (the TLS handler is in place by
/// then, and has not seen them yet), puts a ``TLSHandshakeObserver`` right behind the TLS handler.
final class TLSObserverAnchor: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let onFailure: @Sendable (IoTError) -> Void
    private var placed = false

    init(onFailure: @escaping @Sendable (IoTError) -> Void) {
        self.onFailure = onFailure
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !placed {
            placed = true
            let pipeline = context.pipeline.syncOperations
            if let tls = try? pipeline.handler(type: NIOSSLServerHandler.self) {
                try? pipeline.addHandler(TLSHandshakeObserver(onFailure: onFailure), position: .after(tls))
            }
        }
        context.fireChannelRead(data)
    }
}
