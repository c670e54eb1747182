public import Hummingbird
public import HummingbirdWebSocket
public import IoTListener
import NIOCore

/// The request context of the device listeners (HTTP ingest, WebSocket): Hummingbird's core context, the
/// WebSocket upgrade hand-off, and the peer's address for per-address attempt limits.
public struct DeviceRequestContext: RequestContext, WebSocketRequestContext, ClientAddressContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The WebSocket handler chosen at upgrade.
    public let webSocket: WebSocketHandlerReference<Self>
    /// The client's IP address (`""` when unknown): the TCP peer, or the client a trusted proxy forwarded for
    /// (``IoTListener/ForwardedForMiddleware``).
    public var peerAddress: String
    /// The peer's address and port, unique per connection (`""` when unknown). Formatted when asked for (only a
    /// WebSocket upgrade does), not for every request.
    public var peerKey: String {
        channel.remoteAddress.map { "\($0.ipAddress ?? ""):\($0.port ?? 0)" } ?? ""
    }
    /// The connection (for the TLS peer certificate).
    let channel: any Channel

    /// Creates the context for a request on `source.channel`.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.channel = source.channel
        self.peerAddress = source.channel.remoteAddress?.ipAddress ?? ""
    }

    /// ``peerAddress``, as ``IoTListener/ClientAddressContext`` names it.
    public var clientAddress: String {
        get { peerAddress }
        set { peerAddress = newValue }
    }
}
