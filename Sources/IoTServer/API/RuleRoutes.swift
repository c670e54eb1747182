public import Hummingbird
public import IoTCore
public import IoTRules

/// What `POST …/rules` looks at before decoding the rule, to explain a joint rule without a script.
private struct RuleProbe: Decodable {
    struct ConditionProbe: Decodable {
        var language: String?
        var source: String?
    }

    var kind: String?
    var condition: ConditionProbe?
}

/// `…/tenants/{tenant}/rules`: alarm rules added, listed, read and removed at run time in a
/// ``IoTRules/RuleEngine``, in the rule's Codable form (`{"kind": "range", …}`; a joint rule over the API
/// needs a script condition).
public struct RuleRoutes: ManagementRoutes {
    let engine: RuleEngine
    let definitions: (any DefinitionStore)?

    /// Serves the rules of `engine`.
    ///
    /// - Parameters:
    ///   - engine: the rule engine the rules are added to and removed from.
    ///   - definitions: keeps the rules added through the API, so that
    ///     ``ManagementServer/restoreDefinitions()`` adds them again after a restart; `nil` keeps them in
    ///     memory only.
    public init(engine: RuleEngine, definitions: (any DefinitionStore)? = nil) {
        self.engine = engine
        self.definitions = definitions
    }

    /// Adds again the rules earlier runs accepted through the API.
    public func restoreDefinitions(
        of tenant: TenantID, _ api: ManagementAPI
    ) async throws -> [ManagementServer.RestoreFailure] {
        try await api.restore(
            DefinitionKind.alarmRule, of: tenant, from: definitions,
            advice: "replace it with POST /api/v1/tenants/\(tenant)/rules"
        ) { try await engine.add(try Self.rule(from: $0), tenant: tenant) }
    }

    /// Adds, replaces or removes a rule another instance changed through its API (a shared definition store).
    public func definitionChanged(_ kind: String, id: String, of tenant: TenantID, _ api: ManagementAPI)
        async throws
    {
        try await api.follow(
            kind, id: id, of: tenant, kind: DefinitionKind.alarmRule, from: definitions,
            apply: { try await engine.add(try Self.rule(from: $0), tenant: tenant) },
            remove: { try await engine.remove(ruleID: id, tenant: tenant) })
    }

    /// Removes the tenant's rules from the engine before the tenant is deleted (their state and alarms go with
    /// the tenant's store).
    public func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws {
        for rule in await engine.rules(tenant: tenant) { try await engine.remove(ruleID: rule.id, tenant: tenant) }
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/tenants/:tenant/rules"
        router.get(RouterPath(path), needs: .ruleRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                return try JSONOutput.response(await engine.rules(tenant: scope.tenant).map(RuleOutput.init))
            }
        }
        router.post(RouterPath(path), needs: .ruleWrite) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let bytes = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let rule = try Self.rule(from: bytes)
                do {
                    try await engine.add(rule, tenant: scope.tenant)
                } catch let error as IoTError where error.code == .script {
                    throw APIError.badRequest("the rule's condition cannot be used: \(error.message)")
                }
                try await definitions?.saveDefinition(
                    scope, kind: DefinitionKind.alarmRule, id: rule.id, body: bytes)
                return try JSONOutput.response(RuleOutput(rule), status: .created)
            }
        }
        router.get(RouterPath(path + "/:id"), needs: .ruleRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                guard let rule = await engine.rules(tenant: scope.tenant).first(where: { $0.id == id }) else {
                    throw APIError.notFound("rule \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return try JSONOutput.response(RuleOutput(rule))
            }
        }
        router.delete(RouterPath(path + "/:id"), needs: .ruleWrite) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                let forgotten = try await definitions?.deleteDefinition(
                    scope, kind: DefinitionKind.alarmRule, id: id)
                guard try await engine.remove(ruleID: id, tenant: scope.tenant) || forgotten == true else {
                    throw APIError.notFound("rule \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return Response(status: .noContent)
            }
        }
        return router
    }

    /// Decodes and checks an ``AlarmRule`` in its Codable form (`{"kind": "range", …}`).
    static func rule(from bytes: [UInt8]) throws -> AlarmRule {
        let probe = try JSONOutput.decode(RuleProbe.self, from: bytes)
        if probe.kind == "joint", probe.condition?.language == nil || probe.condition?.source == nil {
            throw APIError.badRequest(
                "a joint rule needs a script condition {\"language\": …, \"source\": …, \"function\": …}; closure conditions cannot be given over the API"
            )
        }
        let rule = try JSONOutput.decode(AlarmRule.self, from: bytes)
        try validateIdentifier(rule.id, "rule id")
        try rule.validate()
        switch rule {
        case .range(let r):
            try validateSignalName(r.signal, "signal")
            guard r.min != nil || r.max != nil else {
                throw APIError.badRequest("a range rule needs \"min\", \"max\" or both")
            }
        case .joint(let r):
            guard case .script = r.condition else {
                throw APIError.badRequest(
                    "a joint rule over the API needs a script condition; closure conditions cannot be given")
            }
            guard !r.parameters.isEmpty else { throw APIError.badRequest("a joint rule needs at least one parameter") }
            guard Set(r.parameters.map(\.name)).count == r.parameters.count else {
                throw APIError.badRequest("a joint rule's parameter names must be unique")
            }
        case .offline: break
        }
        return rule
    }
}

/// A rule as answered: its Codable form, or for a joint rule whose condition is a Swift closure (added
/// in code), the rule with `"condition": {"closure": true}`.
struct RuleOutput: Encodable {
    var rule: AlarmRule

    init(_ rule: AlarmRule) { self.rule = rule }

    private struct ClosureJoint: Encodable {
        var kind = "joint"
        var id: String
        var parameters: [JointRule.Parameter]
        var condition = ["closure": true]
        var severity: AlarmSeverity
        var originator: String?
        var evaluationIntervalMillis: Int64?
        var debounce: Debounce?
    }

    func encode(to encoder: any Encoder) throws {
        if case .joint(let j) = rule, case .closure = j.condition {
            try ClosureJoint(
                id: j.id, parameters: j.parameters, severity: j.severity, originator: j.originator,
                evaluationIntervalMillis: j.evaluationIntervalMillis, debounce: j.debounce
            ).encode(to: encoder)
        } else {
            try rule.encode(to: encoder)
        }
    }
}
