public import IoTCore
import Synchronization

/// A ``RuleStateStore`` in memory, with the same semantics as the SQLite default (one open alarm per
/// rule and originator, newest-first listings, scope on the originator).
///
/// ```swift
/// let rules = InMemoryRuleStateStore()
/// try await rules.saveAlarm(.tenant("acme"),
///     Alarm(id: "a-1", ruleID: "overheat", originator: "pump-1", severity: .major, startTime: 0))
/// ```
public final class InMemoryRuleStateStore: RuleStateStore {
    private struct TenantData {
        var states: [String: [String: [UInt8]]] = [:]
        var alarms: [String: Alarm] = [:]
    }
    private let state = Mutex<[TenantID: TenantData]>([:])

    /// Creates an empty store.
    public init() {}

    public func saveStates(_ scope: AccessScope, ruleID: String, states: [String: [UInt8]]) async throws {
        state.withLock { s in
            s[scope.tenant, default: TenantData()].states[ruleID, default: [:]].merge(states) { _, new in new }
        }
    }

    public func states(_ scope: AccessScope, ruleID: String, originators: [String]?) async throws -> [String: [UInt8]] {
        let all = state.withLock { $0[scope.tenant]?.states[ruleID] ?? [:] }
        guard let originators else { return all }
        return all.filter { originators.contains($0.key) }
    }

    public func deleteStates(_ scope: AccessScope, ruleID: String) async throws {
        state.withLock { _ = $0[scope.tenant]?.states.removeValue(forKey: ruleID) }
    }

    public func saveAlarm(_ scope: AccessScope, _ alarm: Alarm) async throws {
        guard scope.permits(device: alarm.originator) else {
            throw IoTError(
                .forbidden, "alarm originator '\(alarm.originator)' is outside the access scope of this request")
        }
        try state.withLock { s throws(IoTError) in
            // Taken out and put back, so the alarms are mutated in place instead of copied per save.
            var data = s.removeValue(forKey: scope.tenant) ?? TenantData()
            defer { s[scope.tenant] = data }
            if alarm.isOpen,
                data.alarms.values.contains(where: {
                    $0.id != alarm.id && $0.isOpen && $0.ruleID == alarm.ruleID && $0.originator == alarm.originator
                })
            {
                throw IoTError(
                    .conflict,
                    "rule '\(alarm.ruleID)' already has an open alarm for '\(alarm.originator)'; update that alarm instead of raising '\(alarm.id)'"
                )
            }
            data.alarms[alarm.id] = alarm
        }
    }

    public func openAlarm(_ scope: AccessScope, ruleID: String, originator: String) async throws -> Alarm? {
        guard scope.permits(device: originator) else { return nil }
        return state.withLock { s in
            s[scope.tenant]?.alarms.values.first { $0.isOpen && $0.ruleID == ruleID && $0.originator == originator }
        }
    }

    public func alarm(_ scope: AccessScope, id: String) async throws -> Alarm? {
        guard let found = state.withLock({ $0[scope.tenant]?.alarms[id] }), scope.permits(device: found.originator)
        else { return nil }
        return found
    }

    public func alarms(_ scope: AccessScope, query: AlarmQuery) async throws -> [Alarm] {
        let all = state.withLock { s in s[scope.tenant].map { Array($0.alarms.values) } ?? [] }
        let matching = all.filter { a in
            scope.permits(device: a.originator)
                && (query.ruleID == nil || a.ruleID == query.ruleID)
                && (query.originator == nil || a.originator == query.originator)
                && (query.open == nil || a.isOpen == query.open)
                && (query.from.map { a.startTime >= $0 } ?? true)
                && (query.to.map { a.startTime < $0 } ?? true)
        }
        .sorted { ($0.startTime, $0.id) > ($1.startTime, $1.id) }
        guard let limit = query.limit else { return matching }
        return Array(matching.prefix(max(0, limit)))
    }
}
