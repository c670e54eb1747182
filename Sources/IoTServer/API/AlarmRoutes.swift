public import Hummingbird
public import IoTCore
public import IoTRules

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

/// `…/tenants/{tenant}/alarms`: the alarms a ``IoTRules/RuleEngine`` raised, listed with filters (`open`,
/// `ruleID`, `originator`, `from`, `to`, `limit`) as JSON or CSV (`format=csv`), read, acknowledged and cleared.
public struct AlarmRoutes: ManagementRoutes {
    let engine: RuleEngine
    let state: any RuleStateStore

    /// Serves the alarms of `engine`.
    ///
    /// - Parameters:
    ///   - engine: acknowledges and clears alarms.
    ///   - state: the store the engine keeps its alarms in, which lists and reads them.
    public init(engine: RuleEngine, state: any RuleStateStore) {
        self.engine = engine
        self.state = state
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/tenants/:tenant/alarms"
        router.get(RouterPath(path), needs: .alarmRead) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let parameters = request.uri.queryParameters
                let query = try Self.alarmQuery { parameters[Substring($0)] }
                let csv = try CSV.wanted(parameters["format"])
                let alarms = try await state.alarms(scope, query: query)
                if csv { return CSV.response(CSV.alarms(alarms), named: [scope.tenant.rawValue, "alarms"]) }
                return try JSONOutput.response(alarms.map(AlarmOutput.init))
            }
        }
        router.get(RouterPath(path + "/:id"), needs: .alarmRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                guard let alarm = try await state.alarm(scope, id: id) else {
                    throw APIError.notFound("alarm \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return try JSONOutput.response(AlarmOutput(alarm))
            }
        }
        router.post(RouterPath(path + "/:id/ack"), needs: .alarmAck) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let alarm = try await engine.acknowledge(scope, alarmID: context.parameters.get("id") ?? "")
                return try JSONOutput.response(AlarmOutput(alarm))
            }
        }
        router.post(RouterPath(path + "/:id/clear"), needs: .alarmAck) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let alarm = try await engine.clear(scope, alarmID: context.parameters.get("id") ?? "")
                return try JSONOutput.response(AlarmOutput(alarm))
            }
        }
        return router
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
