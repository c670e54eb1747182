import Hummingbird
import IoTCore
import IoTRules

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

extension ManagementServer {
    func statisticsRoutes() -> RouteCollection<BasicRequestContext> {
        let router = RouteCollection(context: BasicRequestContext.self)
        let path = "/api/v1/tenants/:tenant/statistics/jobs"
        router.get(RouterPath(path)) { _, context in
            try await self.handle {
                let scheduler = try self.configuredStatistics()
                let scope = try await self.tenantScope(context)
                return try JSONOutput.response(await scheduler.jobs(tenant: scope.tenant).map(StatisticsJobOutput.init))
            }
        }
        router.post(RouterPath(path)) { request, context in
            try await self.handle {
                let scheduler = try self.configuredStatistics()
                let scope = try await self.tenantScope(context)
                let bytes = try await JSONOutput.body(of: request, maxBytes: self.configuration.maxBodyBytes)
                let job = try Self.statisticsJob(from: bytes)
                do {
                    try await scheduler.add(job, tenant: scope.tenant)
                } catch let error as IoTError where error.code == .script {
                    throw APIError.badRequest("the job's calculation cannot be used: \(error.message)")
                }
                try await self.definitions?.saveDefinition(
                    scope, kind: DefinitionKind.statisticsJob, id: job.id, body: bytes)
                return try JSONOutput.response(StatisticsJobOutput(job: job), status: .created)
            }
        }
        router.get(RouterPath(path + "/:id")) { _, context in
            try await self.handle {
                let scheduler = try self.configuredStatistics()
                let scope = try await self.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                guard let job = await scheduler.jobs(tenant: scope.tenant).first(where: { $0.id == id }) else {
                    throw APIError.notFound("statistics job \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return try JSONOutput.response(StatisticsJobOutput(job: job))
            }
        }
        router.delete(RouterPath(path + "/:id")) { _, context in
            try await self.handle {
                let scheduler = try self.configuredStatistics()
                let scope = try await self.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                let forgotten = try await self.definitions?.deleteDefinition(
                    scope, kind: DefinitionKind.statisticsJob, id: id)
                guard await scheduler.remove(jobID: id, tenant: scope.tenant) || forgotten == true else {
                    throw APIError.notFound("statistics job \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return Response(status: .noContent)
            }
        }
        router.get(RouterPath(path + "/:id/results")) { request, context in
            try await self.handle {
                guard let store = self.statisticsStore else {
                    throw APIError.notFound(
                        "statistics results are not configured on this server; pass a StatisticsStore to ManagementServer(statisticsStore:)"
                    )
                }
                let scope = try await self.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                let parameters = request.uri.queryParameters
                let from = try parameters.get("from").map { try SeriesQuery.time(Substring($0), "from") } ?? .min
                let to = try parameters.get("to").map { try SeriesQuery.time(Substring($0), "to") } ?? .max
                guard from < to else { throw APIError.badRequest("from (\(from)) must be before to (\(to))") }
                let results = try await store.results(scope, jobID: id, from: from, to: to)
                return try JSONOutput.response(results.map(StatisticsResultOutput.init))
            }
        }
        return router
    }

    /// The statistics scheduler, or 404 when this server has none.
    func configuredStatistics() throws -> StatisticsScheduler {
        guard let statistics else {
            throw APIError.notFound(
                "statistics jobs are not configured on this server; pass a StatisticsScheduler to ManagementServer(statistics:)"
            )
        }
        return statistics
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
