import Foundation
public import IoTCore
import Logging
import NIOCore
import PostgresNIO

/// A ``IoTCore/RuleStateStore`` in PostgreSQL: rule state and alarms in each tenant's schema, so a device's
/// rules can move to another instance with their state.
///
/// Tables (component `rules`): `rule_states(rule_id, originator, state bytea)`, one row per rule and originator,
/// so instances that evaluate different devices of a rule never overwrite each other's state; `alarms(id, rule_id, originator, open,
/// start_time, doc)` with the ``IoTCore/Alarm`` as JSON and a partial unique index on `(rule_id, originator)
/// WHERE open`, which keeps one open alarm per rule and originator across instances; `alarm_events(seq, kind,
/// time, alarm)`, written in the alarm's own transaction (see ``IoTCore/UnhandledAlarmEvent``).
public final class PostgresRuleStateStore: RuleStateStore {
    let storage: PostgresStorage

    /// Creates a rule state store on `storage`; tables are created on each tenant's first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let ddl = """
        DROP TABLE IF EXISTS {schema}.rule_state;
        CREATE TABLE IF NOT EXISTS {schema}.rule_states(
          rule_id text NOT NULL, originator text NOT NULL, state bytea NOT NULL, PRIMARY KEY (rule_id, originator));
        CREATE TABLE IF NOT EXISTS {schema}.alarms(
          id text PRIMARY KEY, rule_id text NOT NULL, originator text NOT NULL, open boolean NOT NULL,
          start_time bigint NOT NULL, doc text NOT NULL);
        CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_open ON {schema}.alarms(rule_id, originator) WHERE open;
        CREATE INDEX IF NOT EXISTS alarms_start ON {schema}.alarms(start_time DESC, id DESC);
        CREATE INDEX IF NOT EXISTS alarms_originator ON {schema}.alarms(originator, start_time DESC);
        CREATE TABLE IF NOT EXISTS {schema}.alarm_events(
          seq bigserial PRIMARY KEY, kind text NOT NULL, time bigint NOT NULL, alarm text NOT NULL)
        """

    func schema(_ tenant: TenantID) async throws -> String {
        try await storage.schema(of: tenant, component: "rules", version: 2, Self.ddl)
    }

    var logger: Logger { storage.logger }

    // MARK: Rule state

    /// Replaces the states of `states`' originators of `ruleID`; the other originators' stay.
    public func saveStates(_ scope: AccessScope, ruleID: String, states: [String: [UInt8]]) async throws {
        guard !states.isEmpty else { return }
        let schema = try await schema(scope.tenant)
        let originators = Array(states.keys)
        let blobs = originators.map { ByteBuffer(bytes: states[$0]!) }
        try await storage.execute(
            "save the state of rule \(ruleID)",
            """
            INSERT INTO \(schema).rule_states(rule_id, originator, state)
            SELECT $1, o, s FROM unnest($2::text[], $3::bytea[]) AS t(o, s)
            ON CONFLICT (rule_id, originator) DO UPDATE SET state = excluded.state
            """, PostgresStorage.binds(ruleID, originators, blobs))
    }

    /// The states of `ruleID` by originator (of `originators` only, when given).
    public func states(_ scope: AccessScope, ruleID: String, originators: [String]?) async throws -> [String: [UInt8]] {
        if originators?.isEmpty == true { return [:] }
        let schema = try await schema(scope.tenant)
        return try await storage.mapErrors("read the state of rule \(ruleID)") {
            let query =
                if let originators {
                    PostgresQuery(
                        unsafeSQL:
                            "SELECT originator, state FROM \(schema).rule_states WHERE rule_id = $1 AND originator = ANY($2)",
                        binds: PostgresStorage.binds(ruleID, originators))
                } else {
                    PostgresQuery(
                        unsafeSQL: "SELECT originator, state FROM \(schema).rule_states WHERE rule_id = $1",
                        binds: PostgresStorage.binds(ruleID))
                }
            let rows = try await storage.client.query(query, logger: logger)
            var out: [String: [UInt8]] = [:]
            for try await (originator, b) in rows.decode((String, ByteBuffer).self) {
                out[originator] = Array(buffer: b)
            }
            return out
        }
    }

    /// Deletes every state of `ruleID`.
    public func deleteStates(_ scope: AccessScope, ruleID: String) async throws {
        let schema = try await schema(scope.tenant)
        try await storage.execute(
            "delete the state of rule \(ruleID)", "DELETE FROM \(schema).rule_states WHERE rule_id = $1",
            PostgresStorage.binds(ruleID))
    }

    // MARK: Alarms

    private static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    private static func alarm(_ doc: String) throws -> Alarm {
        do {
            return try JSONDecoder().decode(Alarm.self, from: Data(doc.utf8))
        } catch {
            throw IoTError(
                .storage, "an alarm cannot be read (\(error)); the database was changed outside iotd or is damaged")
        }
    }

    private static func upsertSQL(_ schema: String) -> String {
        """
        INSERT INTO \(schema).alarms(id, rule_id, originator, open, start_time, doc) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (id) DO UPDATE SET rule_id = excluded.rule_id, originator = excluded.originator,
          open = excluded.open, start_time = excluded.start_time, doc = excluded.doc
        """
    }

    private static func upsertBinds(_ alarm: Alarm) throws -> PostgresBindings {
        PostgresStorage.binds(
            alarm.id, alarm.ruleID, alarm.originator, alarm.isOpen, alarm.startTime, try encode(alarm))
    }

    private static func checkScope(_ scope: AccessScope, _ alarm: Alarm) throws {
        guard scope.permits(device: alarm.originator) else {
            throw IoTError(
                .forbidden, "alarm originator '\(alarm.originator)' is outside the access scope of this request")
        }
    }

    /// A second open alarm of one rule and originator is ``IoTCore/IoTError/Code/conflict``.
    private func mappingOpenConflict<T>(_ alarm: Alarm, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch  where PostgresStorage.isUniqueViolation(error) {
            throw IoTError(
                .conflict,
                "rule '\(alarm.ruleID)' already has an open alarm for '\(alarm.originator)'; update that alarm instead of raising '\(alarm.id)'"
            )
        }
    }

    /// Inserts or replaces an alarm (by id).
    public func saveAlarm(_ scope: AccessScope, _ alarm: Alarm) async throws {
        try Self.checkScope(scope, alarm)
        let schema = try await schema(scope.tenant)
        let binds = try Self.upsertBinds(alarm)
        try await storage.mapErrors("save alarm \(alarm.id)") {
            try await mappingOpenConflict(alarm) {
                try await storage.client.query(
                    PostgresQuery(unsafeSQL: Self.upsertSQL(schema), binds: binds), logger: logger)
            }
        }
    }

    /// Saves the alarm and records `event` in one transaction; returns the event's id.
    public func saveAlarm(_ scope: AccessScope, _ alarm: Alarm, unhandledEvent event: UnhandledAlarmEvent) async throws
        -> Int64?
    {
        try Self.checkScope(scope, alarm)
        let schema = try await schema(scope.tenant)
        let binds = try Self.upsertBinds(alarm)
        let snapshot = try Self.encode(event.alarm)
        let logger = self.logger
        return try await storage.mapErrors("save alarm \(alarm.id)") {
            try await mappingOpenConflict(alarm) {
                try await storage.client.withTransaction(logger: logger) { c in
                    try await c.query(PostgresQuery(unsafeSQL: Self.upsertSQL(schema), binds: binds), logger: logger)
                    let rows = try await c.query(
                        PostgresQuery(
                            unsafeSQL:
                                "INSERT INTO \(schema).alarm_events(kind, time, alarm) VALUES ($1, $2, $3) RETURNING seq",
                            binds: PostgresStorage.binds(event.kind, event.time, snapshot)), logger: logger)
                    var seq: Int64?
                    for try await s in rows.decode(Int64.self) { seq = s }
                    guard let seq else { throw IoTError(.storage, "recording an alarm event returned no id") }
                    return seq
                }
            }
        }
    }

    /// The alarm events not yet handled, oldest first.
    public func unhandledAlarmEvents(_ scope: AccessScope) async throws -> [UnhandledAlarmEvent] {
        let schema = try await schema(scope.tenant)
        return try await storage.mapErrors("read alarm events") {
            let rows = try await storage.client.query(
                PostgresQuery(unsafeSQL: "SELECT seq, kind, time, alarm FROM \(schema).alarm_events ORDER BY seq"),
                logger: logger)
            var events: [UnhandledAlarmEvent] = []
            for try await (seq, kind, time, doc) in rows.decode((Int64, String, Int64, String).self) {
                events.append(
                    UnhandledAlarmEvent(
                        id: seq, kind: kind, tenant: scope.tenant, alarm: try Self.alarm(doc), time: time))
            }
            return events
        }
    }

    /// Removes a handled alarm event.
    public func markAlarmEventHandled(_ scope: AccessScope, id: Int64) async throws {
        let schema = try await schema(scope.tenant)
        try await storage.execute(
            "mark alarm event \(id) handled", "DELETE FROM \(schema).alarm_events WHERE seq = $1",
            PostgresStorage.binds(id))
    }

    /// The open alarm of `ruleID` for `originator`, or `nil`.
    public func openAlarm(_ scope: AccessScope, ruleID: String, originator: String) async throws -> Alarm? {
        guard scope.permits(device: originator) else { return nil }
        let schema = try await schema(scope.tenant)
        return try await alarms(
            "SELECT doc FROM \(schema).alarms WHERE rule_id = $1 AND originator = $2 AND open",
            PostgresStorage.binds(ruleID, originator)
        ).first
    }

    /// The alarm `id`, or `nil` (also outside the scope).
    public func alarm(_ scope: AccessScope, id: String) async throws -> Alarm? {
        let schema = try await schema(scope.tenant)
        let found = try await alarms("SELECT doc FROM \(schema).alarms WHERE id = $1", PostgresStorage.binds(id)).first
        guard let found, scope.permits(device: found.originator) else { return nil }
        return found
    }

    /// The alarms matching `query`, newest first.
    public func alarms(_ scope: AccessScope, query: AlarmQuery) async throws -> [Alarm] {
        if let limit = query.limit, limit <= 0 { return [] }
        let schema = try await schema(scope.tenant)
        var conditions: [String] = []
        var binds = PostgresBindings()
        func add(_ condition: String, _ value: some PostgresDynamicTypeEncodable) {
            binds.append(value)
            conditions.append(condition.replacingOccurrences(of: "?", with: "$\(binds.count)"))
        }
        if let r = query.ruleID { add("rule_id = ?", r) }
        if let o = query.originator { add("originator = ?", o) }
        if let open = query.open { add("open = ?", open) }
        if let from = query.from { add("start_time >= ?", from) }
        if let to = query.to { add("start_time < ?", to) }
        if let devices = scope.devices { add("originator = ANY(?::text[])", Array(devices)) }
        var sql = "SELECT doc FROM \(schema).alarms"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY start_time DESC, id DESC"
        if let limit = query.limit { sql += " LIMIT \(limit)" }
        return try await alarms(sql, binds)
    }

    private func alarms(_ sql: String, _ binds: PostgresBindings) async throws -> [Alarm] {
        try await storage.mapErrors("read alarms") {
            let rows = try await storage.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            var result: [Alarm] = []
            for try await doc in rows.decode(String.self) { result.append(try Self.alarm(doc)) }
            return result
        }
    }
}
