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
    /// The peer's address and port, unique per connection (`""` when unknown).
    public let peerKey: String
    /// The connection (for the TLS peer certificate).
    let channel: any Channel

    /// Creates the context for a request on `source.channel`.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.channel = source.channel
        let remote = source.channel.remoteAddress
        self.peerAddress = remote?.ipAddress ?? ""
        self.peerKey = remote.map { "\($0.ipAddress ?? ""):\($0.port ?? 0)" } ?? ""
    }

    /// ``peerAddress``, as ``IoTListener/ClientAddressContext`` names it.
    public var clientAddress: String {
        get { peerAddress }
        set { peerAddress = newValue }
    }
}
