import HTTPTypes
public import Hummingbird
public import IoTCore
public import IoTRules

/// A report as listed: its definition and when it runs next.
struct ReportOutput: Encodable {
    var definition: ReportDefinition
    var nextFire: Int64?

    func encode(to encoder: any Encoder) throws {
        try definition.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encodeIfPresent(nextFire, forKey: .nextFire)
    }

    private enum Keys: String, CodingKey { case nextFire }
}

/// A kept run as listed: the period, when it was made and its files (the document is `…/runs/{to}`, each file
/// `…/runs/{to}/{name}`).
struct ReportRunOutput: Encodable {
    var report: String
    var title: String
    var from: Int64
    var to: Int64
    var generatedAt: Int64
    var files: [String]

    init(_ r: Report) {
        report = r.definitionID
        title = r.title
        from = r.from
        to = r.to
        generatedAt = r.generatedAt
        files = r.attachments.map(\.name)
    }
}

/// `/api/v1/tenants/{tenant}/reports`: scheduled reports (a ``IoTRules/ReportScheduler``), kept in a
/// ``IoTCore/DefinitionStore`` (kind `report`) so that they come back after a restart: list, create or replace
/// (`POST`), read, delete, run now (`POST …/{id}/run`), and their kept runs: the HTML document and its CSV files.
/// Reading needs `report:read`, the rest `report:write`. A caller with a data scope sees and makes only reports
/// whose devices are all in it.
public struct ReportRoutes: ManagementRoutes {
    let scheduler: ReportScheduler
    let definitions: (any DefinitionStore)?

    /// Serves the reports of `scheduler`.
    ///
    /// - Parameter definitions: where accepted reports are kept (and restored from at start); `nil` keeps them in
    ///   memory only.
    public init(scheduler: ReportScheduler, definitions: (any DefinitionStore)?) {
        self.scheduler = scheduler
        self.definitions = definitions
    }

    static let kind = "report"

    /// Adds again the reports earlier runs accepted.
    public func restoreDefinitions(
        of tenant: TenantID, _ api: ManagementAPI
    ) async throws -> [ManagementServer.RestoreFailure] {
        try await api.restore(
            Self.kind, of: tenant, from: definitions,
            advice: "replace it with POST /api/v1/tenants/\(tenant)/reports"
        ) { try await scheduler.add(try JSONOutput.decode(ReportDefinition.self, from: $0), tenant: tenant) }
    }

    /// Stops the tenant's reports before the tenant is deleted (their runs go with the tenant's store).
    public func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws {
        await scheduler.removeTenant(tenant)
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/tenants/:tenant/reports"
        router.get(RouterPath(path), needs: .reportRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                var listed: [ReportOutput] = []
                for d in await scheduler.definitions(tenant: scope.tenant) where Self.visible(d, scope) {
                    listed.append(
                        ReportOutput(definition: d, nextFire: await scheduler.nextFire(id: d.id, tenant: scope.tenant)))
                }
                return try JSONOutput.response(listed)
            }
        }
        router.post(RouterPath(path), needs: .reportWrite) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let bytes = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let definition = try JSONOutput.decode(ReportDefinition.self, from: bytes)
                try validateIdentifier(definition.id, "report id")
                guard Self.visible(definition, scope) else {
                    throw APIError(
                        .forbidden, .forbidden,
                        "the report covers devices outside your data scope; ask an administrator")
                }
                for (i, uid) in definition.devices.enumerated()
                where try await api.registry.device(scope, uid: uid) == nil {
                    throw APIError.badRequest(
                        "devices[\(i)]: device \"\(uid)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                do {
                    try await scheduler.add(definition, tenant: scope.tenant)
                } catch let error as IoTError where error.code == .invalidArgument {
                    throw APIError.badRequest(error.message)
                }
                try await definitions?.saveDefinition(scope, kind: Self.kind, id: definition.id, body: bytes)
                let next = await scheduler.nextFire(id: definition.id, tenant: scope.tenant)
                return try JSONOutput.response(ReportOutput(definition: definition, nextFire: next), status: .created)
            }
        }
        router.get(RouterPath(path + "/:id"), needs: .reportRead) { _, context in
            try await api.handle {
                let (scope, definition) = try await self.existing(api, context)
                let next = await scheduler.nextFire(id: definition.id, tenant: scope.tenant)
                return try JSONOutput.response(ReportOutput(definition: definition, nextFire: next))
            }
        }
        router.delete(RouterPath(path + "/:id"), needs: .reportWrite) { _, context in
            try await api.handle {
                let (scope, definition) = try await self.existing(api, context)
                _ = try await definitions?.deleteDefinition(scope, kind: Self.kind, id: definition.id)
                await scheduler.remove(id: definition.id, tenant: scope.tenant)
                return Response(status: .noContent)
            }
        }
        router.post(RouterPath(path + "/:id/run"), needs: .reportWrite) { request, context in
            try await api.handle {
                let (scope, definition) = try await self.existing(api, context)
                let parameters = request.uri.queryParameters
                let to = try parameters["to"].map { try SeriesQuery.time($0, "to") } ?? api.clock.now()
                let from =
                    try parameters["from"].map { try SeriesQuery.time($0, "from") }
                    ?? to.saturatingSubtract(definition.periodMillis)
                guard from < to else { throw APIError.badRequest("from (\(from)) must be before to (\(to))") }
                let deliver: Bool
                switch parameters["deliver"] {
                case nil, "false": deliver = false
                case "true": deliver = true
                case let other?: throw APIError.badRequest("deliver \"\(other)\" must be true or false")
                }
                let report = try await scheduler.run(
                    id: definition.id, tenant: scope.tenant, from: from, to: to, deliver: deliver)
                return try JSONOutput.response(ReportRunOutput(report), status: .created)
            }
        }
        router.get(RouterPath(path + "/:id/runs"), needs: .reportRead) { _, context in
            try await api.handle {
                let (scope, definition) = try await self.existing(api, context)
                let runs = try await scheduler.runs(id: definition.id, tenant: scope.tenant)
                return try JSONOutput.response(runs.map(ReportRunOutput.init))
            }
        }
        router.get(RouterPath(path + "/:id/runs/:to"), needs: .reportRead) { _, context in
            try await api.handle {
                let report = try await self.run(api, context)
                var response = JSONOutput.text(report.html, contentType: "text/html; charset=utf-8")
                // The document is the platform's own escaped HTML; even so it runs nothing and loads nothing.
                response.headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'"
                return response
            }
        }
        router.get(RouterPath(path + "/:id/runs/:to/:file"), needs: .reportRead) { _, context in
            try await api.handle {
                let report = try await self.run(api, context)
                let name = context.parameters.get("file") ?? ""
                guard let file = report.attachments.first(where: { $0.name == name }) else {
                    throw APIError.notFound(
                        "the run has no file \"\(name)\"; it has \(report.attachments.map(\.name).joined(separator: ", "))"
                    )
                }
                var response = JSONOutput.text(
                    String(decoding: file.data, as: UTF8.self), contentType: file.contentType)
                response.headers[.contentDisposition] =
                    "attachment; filename=\"\(CSV.fileName([report.definitionID, String(report.to), String(name.split(separator: ".").first ?? "")]))\""
                return response
            }
        }
        return router
    }

    /// The `{id}` report of the path, which the caller may see.
    private func existing(_ api: ManagementAPI, _ context: ManagementContext) async throws -> (
        AccessScope, ReportDefinition
    ) {
        let scope = try await api.tenantScope(context)
        let id = context.parameters.get("id") ?? ""
        guard let definition = await scheduler.definition(id: id, tenant: scope.tenant), Self.visible(definition, scope)
        else {
            throw APIError.notFound(
                "report \"\(id)\" does not exist in tenant \"\(scope.tenant)\"; list them with GET /api/v1/tenants/\(scope.tenant)/reports"
            )
        }
        return (scope, definition)
    }

    /// The `{to}` run of the `{id}` report of the path.
    private func run(_ api: ManagementAPI, _ context: ManagementContext) async throws -> Report {
        let (scope, definition) = try await existing(api, context)
        let raw = context.parameters.get("to") ?? ""
        guard let to = Int64(raw),
            let report = try await scheduler.report(id: definition.id, tenant: scope.tenant, to: to)
        else {
            throw APIError.notFound(
                "report \"\(definition.id)\" has no kept run ending at \"\(raw)\"; list them with GET …/reports/\(definition.id)/runs"
            )
        }
        return report
    }

    /// Whether every device the report covers is within `scope`.
    static func visible(_ definition: ReportDefinition, _ scope: AccessScope) -> Bool {
        definition.devices.allSatisfy { scope.permits(device: $0) }
    }
}
