public import IoTCore

/// The conformance suite of ``RuleStateStore``: every line of its contract as a check.
///
/// ```swift
/// @Test(arguments: RuleStateStoreConformance.checks)
/// func ruleState(_ check: ConformanceCheck<any RuleStateStore>) async throws {
///     try await check.run(InMemoryRuleStateStore())
/// }
/// ```
///
/// Beyond the protocol's text, the suite requires that saving an alarm whose originator is outside the
/// scope throws ``IoTError/Code/forbidden``.
public enum RuleStateStoreConformance {
    typealias Support = StoresConformanceSupport

    static let acme = AccessScope.tenant("acme")
    static let globex = AccessScope.tenant("globex")

    static let full = Alarm(
        id: "a-1", ruleID: "overheat", originator: "pump-1", severity: .critical, active: false, acknowledged: true,
        startTime: 1_700_000_000_000, ackTime: 1_700_000_060_000, clearTime: 1_700_000_030_000, occurrences: 7,
        lastValue: .number(-273.15), details: "temp > 90 °C for 5 min")

    static func alarm(
        _ id: String, rule: String = "overheat", originator: String = "pump-1", start: Int64, open: Bool = true
    ) -> Alarm {
        Alarm(
            id: id, ruleID: rule, originator: originator, severity: .major, active: open, acknowledged: !open,
            startTime: start)
    }

    /// The checks.
    public static let checks: [ConformanceCheck<any RuleStateStore>] = [
        ConformanceCheck("rule state is an opaque blob per rule and originator: save, merge, read and delete") {
            store in
            try conformEqual(try await store.states(acme, ruleID: "r1", originators: nil), [:], "missing state")
            let blob: [UInt8] = [0, 1, 2, 255, 0, 128]
            try await store.saveStates(acme, ruleID: "r1", states: ["pump-1": blob, "pump-2": [7]])
            try await store.saveStates(acme, ruleID: "r2", states: ["pump-1": []])
            try conformEqual(
                try await store.states(acme, ruleID: "r1", originators: nil), ["pump-1": blob, "pump-2": [7]],
                "binary state with zero bytes, by originator")
            try conformEqual(
                try await store.states(acme, ruleID: "r2", originators: nil), ["pump-1": []],
                "empty state is not missing state")
            // Another instance saves the originators it evaluates: the others' states stay.
            try await store.saveStates(acme, ruleID: "r1", states: ["pump-2": [42], "pump-3": [3]])
            try conformEqual(
                try await store.states(acme, ruleID: "r1", originators: nil),
                ["pump-1": blob, "pump-2": [42], "pump-3": [3]], "replaced one originator, added one, kept one")
            try conformEqual(
                try await store.states(acme, ruleID: "r1", originators: ["pump-3", "pump-9"]), ["pump-3": [3]],
                "only the originators asked for")
            try conformEqual(
                try await store.states(acme, ruleID: "r1", originators: []), [:], "no originators asked for")
            try await store.deleteStates(acme, ruleID: "r1")
            try conformEqual(try await store.states(acme, ruleID: "r1", originators: nil), [:], "deleted state")
            try await store.deleteStates(acme, ruleID: "r1")
            try conformEqual(
                try await store.states(acme, ruleID: "r2", originators: nil), ["pump-1": []], "other rule's state kept")
        },
        ConformanceCheck("alarms round-trip every field and replace by id") { store in
            try await store.saveAlarm(acme, full)
            try conformEqual(try await store.alarm(acme, id: "a-1"), full, "alarm with every field")
            let minimal = Alarm(id: "a-2", ruleID: "r", originator: "pump-2", severity: .info, startTime: 5)
            try await store.saveAlarm(acme, minimal)
            try conformEqual(try await store.alarm(acme, id: "a-2"), minimal, "alarm with nil fields")
            for (i, value) in [SignalValue.text("12.50"), .bool(true), .bool(false), .number(0.1), .number(1e300)]
                .enumerated()
            {
                var a = minimal
                a.id = "v-\(i)"
                a.originator = "dev-\(i)"
                a.lastValue = value
                try await store.saveAlarm(acme, a)
                try conformEqual(try await store.alarm(acme, id: a.id)?.lastValue, value, "last value \(value)")
            }
            var updated = minimal
            updated.severity = .critical
            updated.occurrences = 3
            updated.lastValue = .number(99)
            updated.active = false
            updated.clearTime = 50
            try await store.saveAlarm(acme, updated)
            try conformEqual(try await store.alarm(acme, id: "a-2"), updated, "replaced alarm")
            try conformEqual(try await store.alarm(acme, id: "nope"), nil, "missing alarm")
        },
        ConformanceCheck("at most one open alarm per (rule, originator); a second open one is a conflict") { store in
            try await store.saveAlarm(acme, alarm("a-1", start: 10))
            try await Support.expectError(.conflict, "second open alarm") {
                try await store.saveAlarm(acme, alarm("a-2", start: 20))
            }
            try conformEqual(try await store.alarm(acme, id: "a-2"), nil, "the conflicting alarm is not stored")
            var cleared = alarm("a-1", start: 10)
            cleared.active = false
            cleared.clearTime = 15
            try await store.saveAlarm(acme, cleared)
            try await Support.expectError(.conflict, "an alarm cleared but not acknowledged is still open") {
                try await store.saveAlarm(acme, alarm("a-2", start: 20))
            }
            try await store.saveAlarm(acme, alarm("a-1b", rule: "other-rule", start: 11))
            try await store.saveAlarm(acme, alarm("a-1c", originator: "pump-2", start: 12))
            try await store.saveAlarm(globex, alarm("g-1", start: 13))
            cleared.acknowledged = true
            cleared.ackTime = 16
            try await store.saveAlarm(acme, cleared)
            try await store.saveAlarm(acme, alarm("a-2", start: 20))
            try await store.saveAlarm(acme, alarm("a-2", start: 20))
            try await store.saveAlarm(acme, alarm("a-0", start: 1, open: false))
            try conformEqual(
                try await store.openAlarm(acme, ruleID: "overheat", originator: "pump-1")?.id, "a-2", "new open alarm")
            try await Support.expectError(.conflict, "reopening a closed alarm while another is open") {
                try await store.saveAlarm(acme, alarm("a-1", start: 10))
            }
            try conformEqual(try await store.alarm(acme, id: "a-1"), cleared, "closed alarm unchanged")
        },
        ConformanceCheck("openAlarm finds the open alarm of (rule, originator) only") { store in
            try conformEqual(try await store.openAlarm(acme, ruleID: "overheat", originator: "pump-1"), nil, "none")
            try await store.saveAlarm(acme, alarm("old", start: 1, open: false))
            try conformEqual(try await store.openAlarm(acme, ruleID: "overheat", originator: "pump-1"), nil, "closed")
            let open = alarm("a-1", start: 10)
            try await store.saveAlarm(acme, open)
            try await store.saveAlarm(acme, alarm("b-1", rule: "other", start: 11))
            try conformEqual(try await store.openAlarm(acme, ruleID: "overheat", originator: "pump-1"), open, "open")
            try conformEqual(try await store.openAlarm(acme, ruleID: "overheat", originator: "pump-2"), nil, "pump-2")
            try conformEqual(try await store.openAlarm(globex, ruleID: "overheat", originator: "pump-1"), nil, "globex")
        },
        ConformanceCheck("alarms lists newest first (start time, then id) and applies every filter") { store in
            let all = [
                alarm("a", start: 100, open: false), alarm("b", rule: "r2", start: 300),
                alarm("c", originator: "pump-2", start: 200), alarm("d", originator: "pump-3", start: 300, open: false),
                alarm("e", rule: "r3", originator: "pump-2", start: 50),
            ]
            for a in all { try await store.saveAlarm(acme, a) }
            func ids(_ q: AlarmQuery) async throws -> [String] { try await store.alarms(acme, query: q).map(\.id) }
            try conformEqual(try await ids(AlarmQuery()), ["d", "b", "c", "a", "e"], "all, newest first")
            try conformEqual(try await store.alarms(acme, query: AlarmQuery()).first, all[3], "full alarms returned")
            try conformEqual(try await ids(AlarmQuery(ruleID: "overheat")), ["d", "c", "a"], "by rule")
            try conformEqual(try await ids(AlarmQuery(originator: "pump-2")), ["c", "e"], "by originator")
            try conformEqual(try await ids(AlarmQuery(open: true)), ["b", "c", "e"], "open only")
            try conformEqual(try await ids(AlarmQuery(open: false)), ["d", "a"], "closed only")
            try conformEqual(try await ids(AlarmQuery(from: 100)), ["d", "b", "c", "a"], "from is inclusive")
            try conformEqual(try await ids(AlarmQuery(to: 200)), ["a", "e"], "to is exclusive")
            try conformEqual(try await ids(AlarmQuery(from: 100, to: 300)), ["c", "a"], "time range")
            try conformEqual(try await ids(AlarmQuery(limit: 2)), ["d", "b"], "limit")
            try conformEqual(try await ids(AlarmQuery(limit: 0)), [], "limit 0")
            try conformEqual(
                try await ids(
                    AlarmQuery(ruleID: "overheat", originator: "pump-2", open: true, from: 200, to: 201, limit: 5)),
                ["c"], "every filter at once")
            try conformEqual(try await ids(AlarmQuery(ruleID: "none")), [], "no match")
        },
        ConformanceCheck("a device scope hides alarms of originators outside it") { store in
            try await store.saveAlarm(acme, alarm("a", start: 1))
            try await store.saveAlarm(acme, alarm("b", originator: "pump-2", start: 2))
            try await store.saveAlarm(acme, alarm("c", originator: "pump-3", start: 3))
            let scope = AccessScope(tenant: "acme", devices: ["pump-1", "pump-3"])
            try conformEqual(try await store.alarms(scope, query: AlarmQuery()).map(\.id), ["c", "a"], "scoped list")
            try conformEqual(
                try await store.alarms(scope, query: AlarmQuery(limit: 1)).map(\.id), ["c"], "scoped list with limit")
            try conformEqual(try await store.alarm(scope, id: "b"), nil, "alarm outside the scope")
            try conformEqual(try await store.alarm(scope, id: "a")?.id, "a", "alarm inside the scope")
            try conformEqual(
                try await store.openAlarm(scope, ruleID: "overheat", originator: "pump-2"), nil, "open alarm outside")
            try await Support.expectError(.forbidden, "saving an alarm outside the scope") {
                try await store.saveAlarm(scope, alarm("d", originator: "pump-2", start: 4, open: false))
            }
            try conformEqual(try await store.alarm(acme, id: "d"), nil, "nothing saved outside the scope")
        },
        ConformanceCheck("tenants are isolated: state and alarms with the same ids never mix") { store in
            try await store.saveStates(acme, ruleID: "r1", states: ["pump-1": [1]])
            try await store.saveAlarm(acme, alarm("a-1", start: 10))
            try conformEqual(
                try await store.states(globex, ruleID: "r1", originators: nil), [:], "other tenant's state")
            try conformEqual(try await store.alarm(globex, id: "a-1"), nil, "other tenant's alarm")
            try conformEqual(try await store.alarms(globex, query: AlarmQuery()), [], "other tenant's alarms")
            try await store.saveStates(globex, ruleID: "r1", states: ["pump-1": [2]])
            try await store.saveAlarm(globex, alarm("a-1", start: 20))
            try await store.deleteStates(globex, ruleID: "r1")
            try conformEqual(
                try await store.states(acme, ruleID: "r1", originators: nil), ["pump-1": [1]], "acme's state kept")
            try conformEqual(try await store.alarm(acme, id: "a-1")?.startTime, 10, "acme's alarm kept")
        },
        ConformanceCheck("an alarm saved with its event is saved; a recorded event is listed until marked handled") {
            store in
            let raised = alarm("e-1", start: 30)
            let first = try await store.saveAlarm(
                acme, raised,
                unhandledEvent: UnhandledAlarmEvent(kind: "raised", tenant: "acme", alarm: raised, time: 31))
            try conformEqual(try await store.alarm(acme, id: "e-1"), raised, "the alarm saved with its event")
            guard let first else {
                // A store that keeps no event records lists none.
                try conformEqual(try await store.unhandledAlarmEvents(acme), [], "no records kept")
                return
            }
            var cleared = raised
            cleared.active = false
            cleared.clearTime = 40
            let second = try await store.saveAlarm(
                acme, cleared,
                unhandledEvent: UnhandledAlarmEvent(kind: "cleared", tenant: "acme", alarm: cleared, time: 40))
            try conformEqual(
                try await store.unhandledAlarmEvents(acme),
                [
                    UnhandledAlarmEvent(id: first, kind: "raised", tenant: "acme", alarm: raised, time: 31),
                    UnhandledAlarmEvent(id: second ?? -1, kind: "cleared", tenant: "acme", alarm: cleared, time: 40),
                ],
                "both events, oldest first, each with the alarm as it was")
            try conformEqual(try await store.unhandledAlarmEvents(globex), [], "other tenant's events")
            try await store.markAlarmEventHandled(acme, id: first)
            try conformEqual(
                try await store.unhandledAlarmEvents(acme).map(\.kind), ["cleared"], "the handled one is gone")
        },
    ]
}
