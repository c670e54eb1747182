import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import IoTCore
import NIOCore

extension ManagementServer {
    /// `GET /api/v1/tenants/{tenant}/live?device=<uid>` as a WebSocket: the ``LiveFeed`` of the tenant.
    /// The admin key is checked at the upgrade (`Authorization: Bearer`, `X-API-Key`, or `?apiKey=` for
    /// browsers); a refused upgrade falls through to the HTTP router, which answers 401/404 as JSON.
    func makeWebSocketRouter() -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        let key = configuration.adminAPIKey.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        router.ws("/api/v1/tenants/:tenant/live") { request, context in
            guard let feed = self.liveFeed, let key else { return .dontUpgrade }
            let presented =
                AdminKeyMiddleware<BasicWebSocketRequestContext>.presentedKey(request.headers)
                ?? request.uri.queryParameters.get("apiKey")
            guard let presented, AdminKeyMiddleware<BasicWebSocketRequestContext>.constantTimeEqual(Array(presented.utf8), key)
            else { return .dontUpgrade }
            let tenant = TenantID(context.parameters.get("tenant") ?? "")
            guard tenant.isValid, (try? await self.registry.tenant(tenant)) != nil else { return .dontUpgrade }
            _ = feed
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            guard let feed = self.liveFeed else { return }
            let tenant = TenantID(context.requestContext.parameters.get("tenant") ?? "")
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

    func addLiveRoutes(to router: Router<BasicRequestContext>) {
        // Reached when the upgrade was refused or not asked for (the admin key is checked by the middleware).
        router.get("/api/v1/tenants/:tenant/live") { _, context in
            try await self.handle {
                _ = try await self.tenantScope(context)
                guard self.liveFeed != nil else {
                    throw APIError.notFound("the live feed is not enabled on this server")
                }
                throw APIError.badRequest("the live feed is a WebSocket; connect with a WebSocket client")
            }
        }
    }
}
