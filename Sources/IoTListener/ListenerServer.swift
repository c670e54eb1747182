package import Hummingbird
package import HummingbirdCore
package import HummingbirdWebSocket
package import IoTCore
package import Logging
package import NIOCore

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
        // The certificate is read again by ListenerTLS.reloadCertificates() (SIGHUP in iotd).
        let source = try tls.map { tls throws(IoTError) in try TLSContextSource(tls) }
        return HTTPServerBuilder { responder in
            let guarded = GuardedChannel(base: child(http1, responder), limiter: limiter)
            guard let source else { return guarded }
            return ReloadableTLSChannel(guarded, source: source)
        }
    }
}

extension ListenerServer {
    /// Runs a listener until graceful shutdown or cancellation: builds its server with `makeServer`, serves
    /// `router` on `host:port`, and reports to `listening` (the bound port, then why it stopped). `onBound`
    /// runs on the bound channel before the port is announced (the device listeners watch TLS handshakes
    /// there).
    ///
    /// - Parameters:
    ///   - announcement: logged with the host and the bound port once listening ("HTTP ingest listening").
    /// - Throws: the error of building the server (TLS, limits) or of binding the port.
    package static func serve<Responder: HTTPResponderBuilder>(
        router: Responder, host: String, port: Int, listening: ListeningPort, announcement: String, logger: Logger,
        makeServer: () throws -> HTTPServerBuilder,
        onBound: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) async throws where Responder.Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        let server: HTTPServerBuilder
        do {
            server = try makeServer()
        } catch {
            listening.stopped("its TLS or limits configuration is invalid: \(error)")
            throw error
        }
        let app = Application(
            router: router, server: server, configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                await onBound(channel)
                let bound = channel.localAddress?.port ?? 0
                logger.info("\(announcement)", metadata: ["host": "\(host)", "port": "\(bound)"])
                listening.bound(bound)
            },
            logger: logger)
        do {
            try await app.run()
        } catch {
            listening.stopped("it failed: \(error)")
            throw error
        }
        listening.stopped("it has stopped")
    }
}
