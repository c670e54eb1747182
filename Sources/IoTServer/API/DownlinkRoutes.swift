import Foundation
public import Hummingbird
public import IoTCore

/// The answer to `POST …/downlink`.
struct DownlinkResult: Encodable {
    var delivered: Int
}

/// `POST …/tenants/{tenant}/devices/{uid}/downlink`: a JSON message sent, on one line, to the device's live
/// WebSocket and TCP connections (``IoTCore/DeviceSessions``), on this instance or, with a relay, another; 409
/// when it has none.
public struct DownlinkRoutes: ManagementRoutes {
    let sessions: DeviceSessions
    let elsewhere: (@Sendable ([UInt8], DeviceIdentity) async throws(IoTError) -> Int)?

    /// Sends to the connections `sessions` tracks (the device listeners register them), or, when the device has
    /// none here, through `elsewhere` to those other instances hold (for example
    /// `IoTPostgres.PostgresDownlinkRelay.send(_:to:)`), which returns how many got it.
    public init(
        sessions: DeviceSessions, elsewhere: (@Sendable ([UInt8], DeviceIdentity) async throws(IoTError) -> Int)? = nil
    ) {
        self.sessions = sessions
        self.elsewhere = elsewhere
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let base = "/api/v1/tenants/:tenant/devices/:uid"
        router.post(RouterPath(base + "/downlink"), needs: .deviceControl) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let device = try await api.existingDevice(scope, context)
                let body = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                guard (try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])) != nil else {
                    throw APIError.badRequest("the downlink payload must be JSON")
                }
                // One line: JSON outside strings is whitespace-insensitive and strings hold no raw newlines.
                let oneLine = body.map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 }
                let identity = DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid)
                var delivered = await sessions.send(oneLine, to: identity)
                if delivered == 0, let elsewhere { delivered = try await elsewhere(oneLine, identity) }
                guard delivered > 0 else {
                    throw APIError(
                        .conflict, .unavailable,
                        "device \"\(device.uid)\" has no live WebSocket or TCP connection; retry when it is connected")
                }
                return try JSONOutput.response(DownlinkResult(delivered: delivered))
            }
        }
        return router
    }
}
