import Foundation
public import IoTCore

/// The default ``RuleStateStore``: rule state blobs and alarms in each tenant's database.
///
/// ```swift
/// let rules = SQLiteRuleStateStore(storage: storage)
/// try await rules.saveAlarm(.tenant("acme"),
///     Alarm(id: "a-1", ruleID: "overheat", originator: "pump-1", severity: .major, startTime: now))
/// let open = try await rules.openAlarm(.tenant("acme"), ruleID: "overheat", originator: "pump-1")
/// ```
///
/// Schema: `rule_states(rule_id, originator, state)` and `alarms(id, rule_id, originator, severity, active,
/// acknowledged, open, start_time, ack_time, clear_time, occurrences, last_value_kind, last_value,
/// details)`. A partial unique index on `(rule_id, originator) WHERE open` enforces one open alarm per
/// rule and originator; saves are upserts by id, so the index is never bypassed by a replace.
/// `alarm_events(seq, kind, time, alarm)` holds alarm changes whose notifications are not yet
/// enqueued, written in the alarm's own transaction (see ``IoTCore/UnhandledAlarmEvent``).
public final class SQLiteRuleStateStore: RuleStateStore {
    private let databases: PreparedDatabases
    /// The same files with the `alarm_events` table (a component of its own, so the alarm schema's
    /// version is unchanged); an event is written in the alarm's transaction.
    private let events: PreparedDatabases

    /// Creates a rule state store on `storage`; tables are created on first use in each tenant.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "rules", version: 2, schema: Self.schema)
        events = PreparedDatabases(storage: storage, component: "alarm-events", version: 1, schema: Self.eventSchema)
    }

    private static let schema = """
        DROP TABLE IF EXISTS rule_state;  -- version 1: one blob per rule; the counters start over once
        CREATE TABLE IF NOT EXISTS rule_states(
            rule_id TEXT NOT NULL,
            originator TEXT NOT NULL,
            state BLOB NOT NULL,
            PRIMARY KEY (rule_id, originator)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS alarms(
            id TEXT PRIMARY KEY NOT NULL,
            rule_id TEXT NOT NULL,
            originator TEXT NOT NULL,
            severity TEXT NOT NULL,
            active INTEGER NOT NULL,
            acknowledged INTEGER NOT NULL,
            open INTEGER NOT NULL,
            start_time INTEGER NOT NULL,
            ack_time INTEGER,
            clear_time INTEGER,
            occurrences INTEGER NOT NULL,
            last_value_kind TEXT,
            last_value,  -- no type: no affinity, numbers and text stay as they were bound
            details TEXT
        );
        CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_open ON alarms(rule_id, originator) WHERE open = 1;
        CREATE INDEX IF NOT EXISTS alarms_start ON alarms(start_time DESC, id DESC);
        CREATE INDEX IF NOT EXISTS alarms_originator ON alarms(originator, start_time DESC);
        CREATE INDEX IF NOT EXISTS alarms_rule ON alarms(rule_id, start_time DESC);
        """

    private static let eventSchema = """
        CREATE TABLE IF NOT EXISTS alarm_events(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            time INTEGER NOT NULL,
            alarm TEXT NOT NULL
        );
        """

    private func db(_ scope: AccessScope) async throws -> SQLiteDatabase {
        try await databases.tenant(scope.tenant)
    }

    // MARK: Rule state

    public func saveStates(_ scope: AccessScope, ruleID: String, states: [String: [UInt8]]) async throws {
        guard !states.isEmpty else { return }
        try await db(scope).write { c in
            try c.transaction {
                let s = try c.statement(
                    """
                    INSERT INTO rule_states(rule_id, originator, state) VALUES (?, ?, ?)
                    ON CONFLICT(rule_id, originator) DO UPDATE SET state = excluded.state
                    """)
                for (originator, state) in states {
                    s.reset()
                    s.bind(1, ruleID)
                    s.bind(2, originator)
                    s.bind(3, state)
                    try s.run()
                }
            }
        }
    }

    public func states(_ scope: AccessScope, ruleID: String, originators: [String]?) async throws -> [String: [UInt8]] {
        if originators?.isEmpty == true { return [:] }
        return try await db(scope).read { c in
            let s = try c.statement("SELECT originator, state FROM rule_states WHERE rule_id = ?")
            defer { s.reset() }
            s.bind(1, ruleID)
            let wanted = originators.map(Set.init)
            var out: [String: [UInt8]] = [:]
            while try s.step() {
                let originator = s.string(0)
                if let wanted, !wanted.contains(originator) { continue }
                out[originator] = s.blob(1)
            }
            return out
        }
    }

    public func deleteStates(_ scope: AccessScope, ruleID: String) async throws {
        try await db(scope).write { c in
            let s = try c.statement("DELETE FROM rule_states WHERE rule_id = ?")
            s.bind(1, ruleID)
            try s.run()
        }
    }

    // MARK: Alarms

    public func saveAlarm(_ scope: AccessScope, _ alarm: Alarm) async throws {
        guard scope.permits(device: alarm.originator) else {
            throw IoTError(
                .forbidden, "alarm originator '\(alarm.originator)' is outside the access scope of this request")
        }
        try await db(scope).write { c in try Self.upsert(c, alarm) }
    }

    /// Inserts or replaces `alarm` on the writer connection `c`.
    private static func upsert(_ c: SQLiteConnection, _ alarm: Alarm) throws {
        try mappingConstraint(
            "rule '\(alarm.ruleID)' already has an open alarm for '\(alarm.originator)'; update that alarm instead of raising '\(alarm.id)'"
        ) {
            let s = try c.statement(
                """
                INSERT INTO alarms(id, rule_id, originator, severity, active, acknowledged, open, start_time,
                    ack_time, clear_time, occurrences, last_value_kind, last_value, details)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET rule_id = excluded.rule_id, originator = excluded.originator,
                    severity = excluded.severity, active = excluded.active, acknowledged = excluded.acknowledged,
                    open = excluded.open, start_time = excluded.start_time, ack_time = excluded.ack_time,
                    clear_time = excluded.clear_time, occurrences = excluded.occurrences,
                    last_value_kind = excluded.last_value_kind, last_value = excluded.last_value,
                    details = excluded.details
                """)
            s.bind(1, alarm.id)
            s.bind(2, alarm.ruleID)
            s.bind(3, alarm.originator)
            s.bind(4, alarm.severity.rawValue)
            s.bind(5, Int64(alarm.active ? 1 : 0))
            s.bind(6, Int64(alarm.acknowledged ? 1 : 0))
            s.bind(7, Int64(alarm.isOpen ? 1 : 0))
            s.bind(8, alarm.startTime)
            s.bind(9, alarm.ackTime)
            s.bind(10, alarm.clearTime)
            s.bind(11, alarm.occurrences)
            s.bind(12, kindedSignalValue: alarm.lastValue)
            s.bind(14, alarm.details)
            try s.run()
        }
    }

    // MARK: Unhandled alarm events

    public func saveAlarm(_ scope: AccessScope, _ alarm: Alarm, unhandledEvent event: UnhandledAlarmEvent) async throws
        -> Int64?
    {
        guard scope.permits(device: alarm.originator) else {
            throw IoTError(
                .forbidden, "alarm originator '\(alarm.originator)' is outside the access scope of this request")
        }
        _ = try await db(scope)  // the alarms table
        let database = try await events.tenant(scope.tenant)
        let snapshot = String(decoding: try JSONEncoder().encode(event.alarm), as: UTF8.self)
        return try await database.write { c in
            try c.transaction {
                try Self.upsert(c, alarm)
                let s = try c.statement("INSERT INTO alarm_events(kind, time, alarm) VALUES (?, ?, ?) RETURNING seq")
                defer { s.reset() }
                s.bind(1, event.kind)
                s.bind(2, event.time)
                s.bind(3, snapshot)
                guard try s.step() else { throw IoTError(.storage, "recording an alarm event returned no id") }
                return s.int64(0)
            }
        }
    }

    public func unhandledAlarmEvents(_ scope: AccessScope) async throws -> [UnhandledAlarmEvent] {
        let rows = try await events.tenant(scope.tenant).read { c in
            let s = try c.statement("SELECT seq, kind, time, alarm FROM alarm_events ORDER BY seq")
            defer { s.reset() }
            var rows: [(Int64, String, Int64, String)] = []
            while try s.step() { rows.append((s.int64(0), s.string(1), s.int64(2), s.string(3))) }
            return rows
        }
        return try rows.map { seq, kind, time, json in
            do {
                let alarm = try JSONDecoder().decode(Alarm.self, from: Data(json.utf8))
                return UnhandledAlarmEvent(id: seq, kind: kind, tenant: scope.tenant, alarm: alarm, time: time)
            } catch {
                throw IoTError(
                    .storage,
                    "alarm event \(seq) cannot be read (\(error)); the database was changed outside iotd or is damaged")
            }
        }
    }

    public func markAlarmEventHandled(_ scope: AccessScope, id: Int64) async throws {
        try await events.tenant(scope.tenant).write { c in
            let s = try c.statement("DELETE FROM alarm_events WHERE seq = ?")
            s.bind(1, id)
            try s.run()
        }
    }

    private static let columns = """
        id, rule_id, originator, severity, active, acknowledged, start_time, ack_time, clear_time, occurrences,
        last_value_kind, last_value, details
        """

    public func openAlarm(_ scope: AccessScope, ruleID: String, originator: String) async throws -> Alarm? {
        guard scope.permits(device: originator) else { return nil }
        return try await db(scope).read { c in
            let s = try c.statement(
                "SELECT \(Self.columns) FROM alarms WHERE rule_id = ? AND originator = ? AND open = 1")
            defer { s.reset() }
            s.bind(1, ruleID)
            s.bind(2, originator)
            return try s.step() ? try Self.alarm(s) : nil
        }
    }

    public func alarm(_ scope: AccessScope, id: String) async throws -> Alarm? {
        let found = try await db(scope).read { c in
            let s = try c.statement("SELECT \(Self.columns) FROM alarms WHERE id = ?")
            defer { s.reset() }
            s.bind(1, id)
            return try s.step() ? try Self.alarm(s) : nil
        }
        guard let found, scope.permits(device: found.originator) else { return nil }
        return found
    }

    public func alarms(_ scope: AccessScope, query: AlarmQuery) async throws -> [Alarm] {
        if let limit = query.limit, limit <= 0 { return [] }
        let visible = try scopeDevicesJSON(scope)
        return try await db(scope).read { c in
            let s = try c.statement(
                """
                SELECT \(Self.columns) FROM alarms
                WHERE (?1 IS NULL OR rule_id = ?1) AND (?2 IS NULL OR originator = ?2) AND (?3 IS NULL OR open = ?3)
                    AND (?4 IS NULL OR start_time >= ?4) AND (?5 IS NULL OR start_time < ?5)
                    AND (?6 IS NULL OR originator IN (SELECT value FROM json_each(?6)))
                ORDER BY start_time DESC, id DESC
                LIMIT ?7
                """)
            defer { s.reset() }
            s.bind(1, query.ruleID)
            s.bind(2, query.originator)
            s.bind(3, query.open.map { Int64($0 ? 1 : 0) })
            s.bind(4, query.from)
            s.bind(5, query.to)
            s.bind(6, visible)
            s.bind(7, Int64(query.limit ?? -1))
            var result: [Alarm] = []
            while try s.step() { result.append(try Self.alarm(s)) }
            return result
        }
    }

    private static func alarm(_ s: Statement) throws -> Alarm {
        guard let severity = AlarmSeverity(rawValue: s.string(3)) else {
            throw IoTError(
                .storage,
                "alarm '\(s.string(0))' has an unknown severity '\(s.string(3))'; the database was changed outside iotd or is damaged"
            )
        }
        return Alarm(
            id: s.string(0), ruleID: s.string(1), originator: s.string(2), severity: severity,
            active: s.int64(4) != 0, acknowledged: s.int64(5) != 0, startTime: s.int64(6),
            ackTime: s.optionalInt64(7), clearTime: s.optionalInt64(8), occurrences: s.int(9),
            lastValue: s.kindedSignalValue(10), details: s.optionalString(12))
    }
}
