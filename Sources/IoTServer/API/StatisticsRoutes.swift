public import Hummingbird
public import IoTCore
public import IoTRules

/// A statistics result as answered: values as plain JSON.
struct StatisticsResultOutput: Encodable {
    var jobID: String
    var fireTime: Int64
    var windowStart: Int64
    var windowEnd: Int64
    var values: [String: JSONValue]

    init(_ r: StatisticsResult) {
        jobID = r.jobID
        fireTime = r.fireTime
        windowStart = r.windowStart
        windowEnd = r.windowEnd
        values = r.values.mapValues { JSONValue($0) }
    }
}

/// A job as answered: its Codable form, or for a job whose calculation is a Swift closure (added in
/// code), the job with `"calculation": {"closure": true}`.
struct StatisticsJobOutput: Encodable {
    var job: StatisticsJob

    private enum Keys: String, CodingKey { case calculation }

    func encode(to encoder: any Encoder) throws {
        guard case .closure? = job.calculation else { return try job.encode(to: encoder) }
        var plain = job
        plain.calculation = nil
        try plain.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(["closure": true], forKey: .calculation)
    }
}

/// `…/tenants/{tenant}/statistics/jobs`: statistics jobs added, listed, read and removed at run time in a
/// ``IoTRules/StatisticsScheduler`` (a script calculation or none over the API), and each job's results.
public struct StatisticsRoutes: ManagementRoutes {
    let scheduler: StatisticsScheduler
    let results: any StatisticsStore
    let definitions: (any DefinitionStore)?

    /// Serves the jobs of `scheduler`.
    ///
    /// - Parameters:
    ///   - scheduler: the scheduler the jobs are added to and removed from.
    ///   - results: the store the scheduler writes results to (`…/jobs/{id}/results`).
    ///   - definitions: keeps the jobs added through the API, so that
    ///     ``ManagementServer/restoreDefinitions()`` adds them again after a restart; `nil` keeps them in
    ///     memory only.
    public init(
        scheduler: StatisticsScheduler, results: any StatisticsStore, definitions: (any DefinitionStore)? = nil
    ) {
        self.scheduler = scheduler
        self.results = results
        self.definitions = definitions
    }

    /// Adds again the jobs earlier runs accepted through the API.
    public func restoreDefinitions(
        of tenant: TenantID, _ api: ManagementAPI
    ) async throws -> [ManagementServer.RestoreFailure] {
        try await api.restore(
            DefinitionKind.statisticsJob, of: tenant, from: definitions,
            advice: "replace it with POST /api/v1/tenants/\(tenant)/statistics/jobs"
        ) { try await scheduler.add(try Self.statisticsJob(from: $0), tenant: tenant) }
    }

    /// Adds, replaces or removes a job another instance changed through its API (a shared definition store).
    public func definitionChanged(_ kind: String, id: String, of tenant: TenantID, _ api: ManagementAPI)
        async throws
    {
        try await api.follow(
            kind, id: id, of: tenant, kind: DefinitionKind.statisticsJob, from: definitions,
            apply: { try await scheduler.add(try Self.statisticsJob(from: $0), tenant: tenant) },
            remove: { _ = await scheduler.remove(jobID: id, tenant: tenant) })
    }

    /// Stops the tenant's jobs before the tenant is deleted (their results go with the tenant's store).
    public func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws {
        for job in await scheduler.jobs(tenant: tenant) { _ = await scheduler.remove(jobID: job.id, tenant: tenant) }
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/tenants/:tenant/statistics/jobs"
        router.get(RouterPath(path), needs: .ruleRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                return try JSONOutput.response(
                    await scheduler.jobs(tenant: scope.tenant).filter { Self.visible($0, scope) }.map(
                        StatisticsJobOutput.init))
            }
        }
        router.post(RouterPath(path), needs: .ruleWrite) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let bytes = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let job = try Self.statisticsJob(from: bytes)
                guard Self.visible(job, scope) else {
                    throw APIError(
                        .forbidden, .forbidden, "the job reads devices outside your data scope; ask an administrator")
                }
                do {
                    try await scheduler.add(job, tenant: scope.tenant)
                } catch let error as IoTError where error.code == .script {
                    throw APIError.badRequest("the job's calculation cannot be used: \(error.message)")
                }
                try await definitions?.saveDefinition(
                    scope, kind: DefinitionKind.statisticsJob, id: job.id, body: bytes)
                return try JSONOutput.response(StatisticsJobOutput(job: job), status: .created)
            }
        }
        router.get(RouterPath(path + "/:id"), needs: .ruleRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                guard let job = await scheduler.jobs(tenant: scope.tenant).first(where: { $0.id == id }),
                    Self.visible(job, scope)
                else {
                    throw APIError.notFound("statistics job \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return try JSONOutput.response(StatisticsJobOutput(job: job))
            }
        }
        router.delete(RouterPath(path + "/:id"), needs: .ruleWrite) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                try await Self.checkVisible(id, scope, scheduler)
                let forgotten = try await definitions?.deleteDefinition(
                    scope, kind: DefinitionKind.statisticsJob, id: id)
                guard await scheduler.remove(jobID: id, tenant: scope.tenant) || forgotten == true else {
                    throw APIError.notFound("statistics job \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return Response(status: .noContent)
            }
        }
        router.get(RouterPath(path + "/:id/results"), needs: .ruleRead) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                let parameters = request.uri.queryParameters
                let from = try parameters.get("from").map { try SeriesQuery.time(Substring($0), "from") } ?? .min
                let to = try parameters.get("to").map { try SeriesQuery.time(Substring($0), "to") } ?? .max
                guard from < to else { throw APIError.badRequest("from (\(from)) must be before to (\(to))") }
                try await Self.checkVisible(id, scope, scheduler)
                let csv = try CSV.wanted(parameters["format"])
                let found = try await results.results(scope, jobID: id, from: from, to: to)
                if csv { return CSV.response(CSV.statisticsResults(found), named: [scope.tenant.rawValue, id]) }
                return try JSONOutput.response(found.map(StatisticsResultOutput.init))
            }
        }
        return router
    }

    /// Whether every device a job reads is within `scope` (a user with a data scope sees only such jobs and
    /// their results).
    static func visible(_ job: StatisticsJob, _ scope: AccessScope) -> Bool {
        job.parameters.allSatisfy { scope.permits(device: $0.device) }
    }

    /// 404 for a job that reads devices outside `scope` (a job that does not exist is left to the caller).
    static func checkVisible(_ id: String, _ scope: AccessScope, _ scheduler: StatisticsScheduler) async throws {
        guard scope.devices != nil, let job = await scheduler.jobs(tenant: scope.tenant).first(where: { $0.id == id })
        else { return }
        guard visible(job, scope) else {
            throw APIError.notFound("statistics job \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
        }
    }

    /// Decodes and checks a ``StatisticsJob`` in its Codable form (script or no calculation).
    static func statisticsJob(from bytes: [UInt8]) throws -> StatisticsJob {
        let job = try JSONOutput.decode(StatisticsJob.self, from: bytes)
        try validateIdentifier(job.id, "job id")
        guard job.leadMillis > 0 else { throw APIError.badRequest("leadMillis (\(job.leadMillis)) must be positive") }
        try job.validate()
        guard Set(job.parameters.map(\.name)).count == job.parameters.count else {
            throw APIError.badRequest("a job's parameter names must be unique")
        }
        if case .closure? = job.calculation {
            throw APIError.badRequest("a job over the API needs a script calculation or none; closures cannot be given")
        }
        return job
    }
}
