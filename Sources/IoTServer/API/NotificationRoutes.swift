import Foundation
public import Hummingbird
public import IoTCore
public import IoTRules

/// The body of `POST …/notifications/templates`, decoded before validation so a bad template is a 400
/// that names the problem (an unknown variable by name).
private struct TemplateInput: Decodable {
    var id: String
    var kind: String
    var subject: String?
    var body: String
    var markdown: String?
}

/// The body of `POST …/notifications/send`.
private struct SendInput: Decodable {
    var template: String
    var values: [String: String]?
    var targets: [RoutingTarget]
}

private struct InboxOutput: Encodable {
    var unread: Int
    var messages: [InboxMessage]
}

private struct ChannelOutput: Encodable {
    var channel: String
    var statistics: NotificationDispatcher.ChannelStatistics
}

/// `…/tenants/{tenant}/notifications`: templates and routing policies of a ``IoTCore/NotificationRouter``
/// (kept, and restored after a restart, through a definition store), sending a template to targets, the
/// outbox (list by status, retry a dead letter), the channels' delivery statistics and the in-app inbox.
public struct NotificationRoutes: ManagementRoutes {
    let notifications: NotificationRouter
    let outbox: any Outbox
    let inbox: any Inbox
    let dispatcher: NotificationDispatcher?
    let definitions: (any DefinitionStore)?

    /// Serves the notifications of `router`.
    ///
    /// - Parameters:
    ///   - router: templates, policies and sending.
    ///   - outbox: what is to be delivered, and the dead letters.
    ///   - inbox: the in-app channel's messages.
    ///   - dispatcher: woken after a retry, and asked for `…/channels`; `nil` answers `…/channels` with 404.
    ///   - definitions: keeps the templates and policies added through the API, so that
    ///     ``ManagementServer/restoreDefinitions()`` adds them again after a restart; `nil` keeps them in
    ///     memory only.
    public init(
        router: NotificationRouter, outbox: any Outbox, inbox: any Inbox, dispatcher: NotificationDispatcher? = nil,
        definitions: (any DefinitionStore)? = nil
    ) {
        self.notifications = router
        self.outbox = outbox
        self.inbox = inbox
        self.dispatcher = dispatcher
        self.definitions = definitions
    }

    /// Adds again the templates, then the routing policies (which name them), that earlier runs accepted
    /// through the API.
    public func restoreDefinitions(
        of tenant: TenantID, _ api: ManagementAPI
    ) async throws -> [ManagementServer.RestoreFailure] {
        let templates = try await api.restore(
            DefinitionKind.notificationTemplate, of: tenant, from: definitions,
            advice: "replace it with POST /api/v1/tenants/\(tenant)/notifications/templates"
        ) {
            try await notifications.saveTemplate(
                try JSONDecoder().decode(NotificationTemplate.self, from: Data($0)), tenant: tenant)
        }
        let policies = try await api.restore(
            DefinitionKind.notificationPolicy, of: tenant, from: definitions,
            advice: "replace it with POST /api/v1/tenants/\(tenant)/notifications/policies"
        ) {
            try await notifications.savePolicy(
                try JSONDecoder().decode(RoutingPolicy.self, from: Data($0)), tenant: tenant)
        }
        return templates + policies
    }

    /// Saves or forgets a template or routing policy another instance changed through its API (a shared
    /// definition store).
    public func definitionChanged(_ kind: String, id: String, of tenant: TenantID, _ api: ManagementAPI)
        async throws
    {
        try await api.follow(
            kind, id: id, of: tenant, kind: DefinitionKind.notificationTemplate, from: definitions,
            apply: {
                try await notifications.saveTemplate(
                    try JSONDecoder().decode(NotificationTemplate.self, from: Data($0)), tenant: tenant)
            },
            remove: { _ = await notifications.removeTemplate(id: id, tenant: tenant) })
        try await api.follow(
            kind, id: id, of: tenant, kind: DefinitionKind.notificationPolicy, from: definitions,
            apply: {
                try await notifications.savePolicy(
                    try JSONDecoder().decode(RoutingPolicy.self, from: Data($0)), tenant: tenant)
            },
            remove: { _ = await notifications.removePolicy(id: id, tenant: tenant) })
    }

    /// Forgets the tenant's templates and routing policies before the tenant is deleted.
    public func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws {
        for policy in await notifications.policies(tenant: tenant) {
            _ = await notifications.removePolicy(id: policy.id, tenant: tenant)
        }
        for template in await notifications.templates(tenant: tenant) {
            _ = await notifications.removeTemplate(id: template.id, tenant: tenant)
        }
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/tenants/:tenant/notifications"
        router.get(RouterPath(path + "/templates"), needs: .notificationRead) { _, context in
            try await api.handle {
                let r = notifications
                let scope = try await api.tenantScope(context)
                return try JSONOutput.response(await r.templates(tenant: scope.tenant))
            }
        }
        router.post(RouterPath(path + "/templates"), needs: .notificationWrite) { request, context in
            try await api.handle {
                let r = notifications
                let scope = try await api.tenantScope(context)
                let input = try await JSONOutput.decode(
                    TemplateInput.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                try validateIdentifier(input.id, "template id")
                let template = try NotificationTemplate(
                    id: input.id, kind: TemplateKind(rawValue: input.kind), subject: input.subject, body: input.body,
                    markdown: input.markdown)
                try await r.saveTemplate(template, tenant: scope.tenant)
                try await definitions?.saveDefinition(
                    scope, kind: DefinitionKind.notificationTemplate, id: template.id,
                    body: try definitionBytes(template))
                return try JSONOutput.response(template, status: .created)
            }
        }
        router.get(RouterPath(path + "/templates/:id"), needs: .notificationRead) { _, context in
            try await api.handle {
                let r = notifications
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                guard let t = await r.template(id: id, tenant: scope.tenant) else {
                    throw APIError.notFound("template \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return try JSONOutput.response(t)
            }
        }
        router.delete(RouterPath(path + "/templates/:id"), needs: .notificationWrite) { _, context in
            try await api.handle {
                let r = notifications
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                let forgotten = try await definitions?.deleteDefinition(
                    scope, kind: DefinitionKind.notificationTemplate, id: id)
                guard await r.removeTemplate(id: id, tenant: scope.tenant) || forgotten == true else {
                    throw APIError.notFound(
                        "template \"\(id)\" is not a template of tenant \"\(scope.tenant)\" (built-ins cannot be removed)"
                    )
                }
                return Response(status: .noContent)
            }
        }
        router.get(RouterPath(path + "/policies"), needs: .notificationRead) { _, context in
            try await api.handle {
                let r = notifications
                let scope = try await api.tenantScope(context)
                return try JSONOutput.response(await r.policies(tenant: scope.tenant))
            }
        }
        router.post(RouterPath(path + "/policies"), needs: .notificationWrite) { request, context in
            try await api.handle {
                let r = notifications
                let scope = try await api.tenantScope(context)
                let policy = try await JSONOutput.decode(
                    RoutingPolicy.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                try validateIdentifier(policy.id, "policy id")
                try await r.savePolicy(policy, tenant: scope.tenant)
                try await definitions?.saveDefinition(
                    scope, kind: DefinitionKind.notificationPolicy, id: policy.id,
                    body: try definitionBytes(policy))
                return try JSONOutput.response(policy, status: .created)
            }
        }
        router.delete(RouterPath(path + "/policies/:id"), needs: .notificationWrite) { _, context in
            try await api.handle {
                let r = notifications
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                let forgotten = try await definitions?.deleteDefinition(
                    scope, kind: DefinitionKind.notificationPolicy, id: id)
                guard await r.removePolicy(id: id, tenant: scope.tenant) || forgotten == true else {
                    throw APIError.notFound("policy \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return Response(status: .noContent)
            }
        }
        router.post(RouterPath(path + "/send"), needs: .notificationWrite) { request, context in
            try await api.handle {
                let r = notifications
                let scope = try await api.tenantScope(context)
                let input = try await JSONOutput.decode(
                    SendInput.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                guard let template = await r.template(id: input.template, tenant: scope.tenant) else {
                    throw APIError.notFound(
                        "template \"\(input.template)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                let values = input.values ?? [:]
                if let known = template.kind.variables,
                    let missing = known.subtracting(["tenant", "timestamp"]).first(where: { name in
                        [template.subject, template.body, template.markdown].contains { text in
                            text.map { (try? Template($0).variables.contains(name)) ?? false } ?? false
                        } && values[name] == nil
                    })
                {
                    throw APIError.badRequest("the template uses \"\(missing)\"; give it in \"values\"")
                }
                var filled = values
                filled["tenant"] = filled["tenant"] ?? scope.tenant.rawValue
                filled["timestamp"] = filled["timestamp"] ?? AlarmVariables.isoTimestamp(api.clock.now())
                let messages = try await r.notify(
                    templateID: input.template, values: filled, targets: input.targets, tenant: scope.tenant)
                return try JSONOutput.response(messages.map(OutboxMessageOutput.init), status: .accepted)
            }
        }
        router.get(RouterPath(path + "/outbox"), needs: .notificationRead) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let q = request.uri.queryParameters
                let raw = q["status"].map(String.init) ?? "pending"
                guard let status = OutboxMessage.Status(rawValue: raw) else {
                    throw APIError.badRequest(
                        "status \"\(raw)\" is not one of \(OutboxMessage.Status.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                let limit = try Self.limit(q["limit"], default: 100)
                let messages = try await outbox.messages(scope, status: status, limit: limit)
                return try JSONOutput.response(messages.map(OutboxMessageOutput.init))
            }
        }
        router.post(RouterPath(path + "/outbox/:id/retry"), needs: .notificationWrite) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                try await outbox.retry(scope, id: id, at: api.clock.now())
                await dispatcher?.wake(scope.tenant)
                guard let m = try await outbox.message(scope, id: id) else {
                    throw APIError.notFound("outbox message \"\(id)\" does not exist")
                }
                return try JSONOutput.response(OutboxMessageOutput(m))
            }
        }
        router.get(RouterPath(path + "/channels"), needs: .notificationRead) { _, context in
            try await api.handle {
                guard let dispatcher = dispatcher else {
                    throw APIError.notFound(
                        "notification delivery is not configured on this server; pass a NotificationDispatcher")
                }
                _ = try await api.tenantScope(context)
                let stats = await dispatcher.statistics()
                return try JSONOutput.response(
                    dispatcher.channels.map { ChannelOutput(channel: $0, statistics: stats[$0] ?? .init()) })
            }
        }
        router.get(RouterPath(path + "/inbox/:recipient"), needs: .notificationRead) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let recipient = context.parameters.get("recipient") ?? ""
                let q = request.uri.queryParameters
                let unreadOnly = q["unread"] == "true"
                let limit = try Self.limit(q["limit"], default: 100)
                let messages = try await inbox.messages(
                    scope, recipient: recipient, unreadOnly: unreadOnly, limit: limit)
                return try JSONOutput.response(
                    InboxOutput(unread: try await inbox.unreadCount(scope, recipient: recipient), messages: messages))
            }
        }
        router.post(RouterPath(path + "/inbox/:recipient/:id/read"), needs: .notificationWrite) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let recipient = context.parameters.get("recipient") ?? ""
                let id = context.parameters.get("id") ?? ""
                guard try await inbox.markRead(scope, recipient: recipient, id: id, at: api.clock.now()) else {
                    throw APIError.notFound("\"\(recipient)\" has no inbox message \"\(id)\"")
                }
                return Response(status: .noContent)
            }
        }
        return router
    }

    static func limit(_ raw: Substring?, default value: Int) throws -> Int {
        guard let raw else { return value }
        guard let n = Int(raw), n > 0, n <= 10_000 else {
            throw APIError.badRequest("limit \"\(raw)\" must be an integer from 1 to 10000")
        }
        return n
    }
}

/// An outbox message as the API lists it: its attachments by name, type and size (a report's files are
/// downloaded from `…/reports`, not through the outbox listing).
struct OutboxMessageOutput: Encodable {
    struct File: Encodable {
        var name: String
        var contentType: String
        var bytes: Int
    }

    var id: String
    var channel: String
    var recipient: String
    var subject: String?
    var body: String
    var orderingKey: String?
    var createdAt: Int64
    var nextAttemptAt: Int64
    var attempts: Int
    var status: OutboxMessage.Status
    var lastError: String?
    var format: NotificationFormat
    var attachments: [File]

    init(_ m: OutboxMessage) {
        (id, channel, recipient, subject, body, orderingKey) = (
            m.id, m.channel, m.recipient, m.subject, m.body, m.orderingKey
        )
        (createdAt, nextAttemptAt, attempts, status, lastError) = (
            m.createdAt, m.nextAttemptAt, m.attempts, m.status, m.lastError
        )
        format = m.format
        attachments = m.attachments.map { File(name: $0.name, contentType: $0.contentType, bytes: $0.data.count) }
    }
}
