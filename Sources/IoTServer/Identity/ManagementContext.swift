public import Hummingbird
public import HummingbirdAuth
import IoTCore
public import IoTListener
import NIOCore

/// The request context of the management API: Hummingbird's core context, the ``Principal`` that the
/// authentication middleware resolved, and the client's address for the audit log.
public struct ManagementContext: AuthRequestContext, RequestContext, ClientAddressContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The caller, once authenticated; `nil` on the routes that need no sign-in (`POST /api/v1/auth/login` …).
    public var identity: Principal?
    /// The client's IP address (`""` when unknown, as in tests that drive the router without a socket): the TCP
    /// peer, or the client a trusted proxy forwarded for (``IoTListener/ForwardedForMiddleware``).
    public var clientAddress: String

    /// Creates the context for a request on `source.channel`.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.identity = nil
        self.clientAddress = source.channel.remoteAddress?.ipAddress ?? ""
    }

    /// The caller.
    ///
    /// - Throws: 401 when the route was reached without authentication (a route outside the `/api` group).
    public func principal() throws -> Principal {
        guard let identity else {
            throw APIError(.unauthorized, .unauthorized, "sign in first: send \"Authorization: Bearer <token>\"")
        }
        return identity
    }
}
