import Hummingbird
import IoTCore
import IoTRules

/// An alarm as answered: the model's fields with `lastValue` as plain JSON.
struct AlarmOutput: Encodable {
    var id: String
    var ruleID: String
    var originator: String
    var severity: AlarmSeverity
    var active: Bool
    var acknowledged: Bool
    var open: Bool
    var startTime: Int64
    var ackTime: Int64?
    var clearTime: Int64?
    var occurrences: Int
    var lastValue: JSONValue
    var details: String?

    init(_ a: Alarm) {
        id = a.id
        ruleID = a.ruleID
        originator = a.originator
        severity = a.severity
        active = a.active
        acknowledged = a.acknowledged
        open = a.isOpen
        startTime = a.startTime
        ackTime = a.ackTime
        clearTime = a.clearTime
        occurrences = a.occurrences
        lastValue = JSONValue(a.lastValue)
        details = a.details
    }
}

extension ManagementServer {
    func alarmRoutes() -> RouteCollection<BasicRequestContext> {
        let router = RouteCollection(context: BasicRequestContext.self)
        let path = "/api/v1/tenants/:tenant/alarms"
        router.get(RouterPath(path)) { request, context in
            try await self.handle {
                let store = try self.configuredRuleState()
                let scope = try await self.tenantScope(context)
                let parameters = request.uri.queryParameters
                let query = try Self.alarmQuery { parameters[Substring($0)] }
                return try JSONOutput.response(try await store.alarms(scope, query: query).map(AlarmOutput.init))
            }
        }
        router.get(RouterPath(path + "/:id")) { _, context in
            try await self.handle {
                let store = try self.configuredRuleState()
                let scope = try await self.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                guard let alarm = try await store.alarm(scope, id: id) else {
                    throw APIError.notFound("alarm \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return try JSONOutput.response(AlarmOutput(alarm))
            }
        }
        router.post(RouterPath(path + "/:id/ack")) { _, context in
            try await self.handle {
                let engine = try self.configuredRules()
                let scope = try await self.tenantScope(context)
                let alarm = try await engine.acknowledge(scope, alarmID: context.parameters.get("id") ?? "")
                return try JSONOutput.response(AlarmOutput(alarm))
            }
        }
        router.post(RouterPath(path + "/:id/clear")) { _, context in
            try await self.handle {
                let engine = try self.configuredRules()
                let scope = try await self.tenantScope(context)
                let alarm = try await engine.clear(scope, alarmID: context.parameters.get("id") ?? "")
                return try JSONOutput.response(AlarmOutput(alarm))
            }
        }
        return router
    }

    /// The rule state store, or 404 when this server has none.
    func configuredRuleState() throws -> any RuleStateStore {
        guard let ruleState else {
            throw APIError.notFound(
                "alarms are not configured on this server; pass a RuleStateStore to ManagementServer(ruleState:)")
        }
        return ruleState
    }

    /// The query of `GET …/alarms`: `open`, `ruleID`, `originator`, `from`, `to`, `limit`.
    static func alarmQuery(_ query: (String) -> Substring?) throws -> AlarmQuery {
        var q = AlarmQuery()
        if let v = query("open") {
            switch v {
            case "true": q.open = true
            case "false": q.open = false
            default: throw APIError.badRequest("open \"\(v)\" must be true or false")
            }
        }
        q.ruleID = query("ruleID").map(String.init)
        q.originator = query("originator").map(String.init)
        if let v = query("from") { q.from = try SeriesQuery.time(v, "from") }
        if let v = query("to") { q.to = try SeriesQuery.time(v, "to") }
        if let from = q.from, let to = q.to, from >= to {
            throw APIError.badRequest("from (\(from)) must be before to (\(to))")
        }
        if let v = query("limit") {
            guard let n = Int(v), n > 0 else { throw APIError.badRequest("limit \"\(v)\" must be a positive integer") }
            q.limit = n
        }
        return q
    }
}
