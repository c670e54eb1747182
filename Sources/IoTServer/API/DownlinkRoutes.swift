import Foundation
public import Hummingbird
public import IoTCore

/// The answer to `POST …/downlink`.
struct DownlinkResult: Encodable {
    var delivered: Int
}

/// `POST …/tenants/{tenant}/devices/{uid}/downlink`: a JSON message sent, on one line, to the device's live
/// WebSocket and TCP connections (``IoTCore/DeviceSessions``); 409 when it has none.
public struct DownlinkRoutes: ManagementRoutes {
    let sessions: DeviceSessions

    /// Sends to the connections `sessions` tracks (the device listeners register them).
    public init(sessions: DeviceSessions) {
        self.sessions = sessions
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
                let delivered = await sessions.send(
                    oneLine, to: DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid))
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
