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
        let authentication = AuthenticationMiddleware(adminKey: configuration.adminAPIKey, identity: api.identity)
        router.ws("/api/v1/tenants/:tenant/live") { _, _ in
            // Hummingbird answers a declined upgrade with a bare 400; refusals are close frames instead.
            .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let request = context.request
            let presented =
                AuthenticationMiddleware.presentedKey(request.headers)
                ?? request.uri.queryParameters.get("apiKey").map { String($0) }
            let tenant = TenantID(context.requestContext.parameters.get("tenant") ?? "")
            let tenantExists = tenant.isValid ? ((try? await self.api.registry.tenant(tenant)) ?? nil) != nil : false
            var principal: Principal? = nil
            if let presented { principal = try? await authentication.principal(of: presented) }
            var refusal: (Int, String)? = nil
            if let principal {
                if self.liveFeed == nil {
                    refusal = (4404, "not_found: the live feed is not enabled on this server")
                } else if !tenantExists {
                    refusal = (4404, "not_found: tenant \"\(tenant)\" does not exist")
                } else if !principal.mayAccess(tenant) {
                    refusal = (4403, "forbidden: your account may not work on tenant \"\(tenant)\"")
                } else if !principal.permissions.contains(.dataRead) {
                    refusal = (4403, "forbidden: the live feed needs the permission \"data:read\"")
                }
            } else {
                refusal = (
                    4401,
                    "unauthorized: send an access token, an API key or the admin key as X-API-Key, Authorization: Bearer or ?apiKey="
                )
            }
            if let (code, reason) = refusal {
                try? await outbound.close(WebSocketErrorCode(codeNumber: code), reason: reason)
                do { for try await _ in inbound {} } catch {}
                return
            }
            guard let feed = self.liveFeed else { return }
            // The devices asked for, within the caller's data scope.
            let asked = context.request.uri.queryParameters.getAll("device").map { String($0) }
            var devices: Set<String>? = asked.isEmpty ? nil : Set(asked)
            if let allowed = principal?.devices { devices = devices.map { $0.intersection(allowed) } ?? allowed }
            let subscription = feed.subscribe(tenant: tenant, devices: devices)
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
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        // Reached when the upgrade was refused or not asked for (the admin key is checked by the middleware).
        router.get("/api/v1/tenants/:tenant/live", needs: .dataRead) { _, context in
            try await api.handle {
                _ = try await api.tenantScope(context)
                throw APIError.badRequest("the live feed is a WebSocket; connect with a WebSocket client")
            }
        }
        return router
    }
}
