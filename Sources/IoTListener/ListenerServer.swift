package import Hummingbird
package import HummingbirdCore
import HummingbirdTLS
package import HummingbirdWebSocket

/// Builds the servers of the HTTP listeners (the device listeners of IoTHTTP, the management API): the
/// child channel behind the connection guard, with the limits' idle timeout and request head watcher, in TLS
/// when the listener has it.
package enum ListenerServer {
    /// The server of a listener that upgrades to WebSocket through `webSocketRouter` (the WebSocket device
    /// listener, the management API's live feed), with the limits of `limiter` and TLS when `tls` is set.
    package static func webSocketUpgradeServer<Context: WebSocketRequestContext>(
        tls: ListenerTLS?, limiter: ConnectionLimiter, webSocketRouter: Router<Context>,
        webSocket: WebSocketServerConfiguration = .init()
    ) throws -> HTTPServerBuilder {
        let webSocketResponder = webSocketRouter.buildResponder()
        return try serverBuilder(tls: tls, limiter: limiter) {
            HTTP1WebSocketUpgradeChannel(
                responder: $1, webSocketResponder: webSocketResponder, configuration: .init(http1: $0, ws: webSocket))
        }
    }

    /// A listener's server: `child`, built with Hummingbird's HTTP/1 settings for the limiter's limits (idle
    /// timeout, request head watcher), behind the connection guard (caps, head deadline), in TLS when `tls`
    /// is set.
    package static func serverBuilder<Child: ServerChildChannel>(
        tls: ListenerTLS?, limiter: ConnectionLimiter,
        _ child: @escaping @Sendable (HTTP1Channel.Configuration, @escaping HTTPChannelHandler.Responder) -> Child
    ) throws -> HTTPServerBuilder {
        let http1 = limiter.limits.http1Configuration()
        let tlsConfiguration = try tls.map { tls in
            _ = try tls.makeContext()
            return try tls.serverConfiguration()
        }
        return HTTPServerBuilder { responder in
            let guarded = GuardedChannel(base: child(http1, responder), limiter: limiter)
            guard let tlsConfiguration else { return guarded }
            return try TLSChannel(guarded, tlsConfiguration: tlsConfiguration)
        }
    }
}
