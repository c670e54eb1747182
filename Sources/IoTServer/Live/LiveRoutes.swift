import HTTPTypes
public import Hummingbird
import HummingbirdWebSocket
import IoTCore
import NIOCore
import NIOWebSocket

extension ManagementServer {
    /// `GET /api/v1/tenants/{tenant}/live?device=<uid>` as a WebSocket: the ``LiveFeed`` of the tenant.
    /// The admin key (`Authorization: Bearer`, `X-API-Key`, or `?apiKey=` for browsers) and the tenant are
    /// checked on connection; a refusal is a close frame 4401 (key) or 4404 (tenant, feed off) with the reason.
    func makeWebSocketRouter() -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        let key = configuration.adminAPIKey.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        router.ws("/api/v1/tenants/:tenant/live") { _, _ in
            // Hummingbird answers a declined upgrade with a bare 400; refusals are close frames instead.
            .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let request = context.request
            let presented =
                AdminKeyMiddleware<BasicWebSocketRequestContext>.presentedKey(request.headers)
                ?? request.uri.queryParameters.get("apiKey").map { String($0) }
            let tenant = TenantID(context.requestContext.parameters.get("tenant") ?? "")
            let tenantExists = tenant.isValid ? ((try? await self.api.registry.tenant(tenant)) ?? nil) != nil : false
            let refusal: (Int, String)?
            if let presented, let key,
                AdminKeyMiddleware<BasicWebSocketRequestContext>.constantTimeEqual(Array(presented.utf8), key)
            {
                if self.liveFeed == nil {
                    refusal = (4404, "not_found: the live feed is not enabled on this server")
                } else if !tenantExists {
                    refusal = (4404, "not_found: tenant \"\(tenant)\" does not exist")
                } else {
                    refusal = nil
                }
            } else {
                refusal = (4401, "unauthorized: send the admin key as X-API-Key, Authorization: Bearer or ?apiKey=")
            }
            if let (code, reason) = refusal {
                try? await outbound.close(WebSocketErrorCode(codeNumber: code), reason: reason)
                do { for try await _ in inbound {} } catch {}
                return
            }
            guard let feed = self.liveFeed else { return }
            let devices = context.request.uri.queryParameters.getAll("device").map { String($0) }
            let subscription = feed.subscribe(tenant: tenant, devices: devices.isEmpty ? nil : Set(devices))
            defer { feed.unsubscribe(subscription.id) }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Ends when the client closes: the inbound stream finishes.
                    do { for try await _ in inbound {} } catch {}
                }
                group.addTask {
                    for await frame in subscription.frames {
                        do { try await outbound.write(.text(frame)) } catch { return }
                    }
                }
                _ = await group.next()
                feed.unsubscribe(subscription.id)
                group.cancelAll()
            }
        }
        return router
    }
}

/// `…/tenants/{tenant}/live`: the ``LiveFeed`` of a tenant as a WebSocket on the management listener
/// (``ManagementServer`` upgrades the connection; the admin key and the tenant are checked on connection,
/// a refusal is a close frame 4401 or 4404 with the reason). A plain `GET` answers 400 saying to connect
/// with a WebSocket client.
public struct LiveFeedRoutes: ManagementRoutes {
    let feed: LiveFeed

    /// Serves `feed` (give the same feed to the ingestor as an observer).
    public init(feed: LiveFeed) {
        self.feed = feed
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<BasicRequestContext> {
        let router = RouteCollection(context: BasicRequestContext.self)
        // Reached when the upgrade was refused or not asked for (the admin key is checked by the middleware).
        router.get("/api/v1/tenants/:tenant/live") { _, context in
            try await api.handle {
                _ = try await api.tenantScope(context)
                throw APIError.badRequest("the live feed is a WebSocket; connect with a WebSocket client")
            }
        }
        return router
    }
}
