import Foundation
public import IoTCore
import Logging
import PostgresNIO

/// An ``IoTCore/Outbox`` in PostgreSQL: the durable queue of notifications in each tenant's schema, claimed by
/// several instances without sending a message twice.
///
/// Table (component `outbox`): `outbox(seq, id UNIQUE, ordering_key, created_at, next_attempt_at, attempts,
/// status, last_error, delivered_at, claimed_by, claimed_at, doc)`, the message's content (channel, recipient,
/// subject, body, format, attachments) as JSON in `doc`. ``claimDue(_:now:limit:)`` locks the rows it claims
/// with `FOR UPDATE SKIP LOCKED`, so instances claiming at once take different messages, and a message waits
/// while an earlier one with its ordering key is pending or sending, on whichever instance.
///
/// ``releaseClaims(_:)`` puts back this instance's claims (left by its own crash) and claims older than
/// ``Configuration/claimLease`` by the database server's clock (left by an instance that died and did not come
/// back).
public final class PostgresOutbox: Outbox {
    /// The instance and the lease of its claims.
    public struct Configuration: Sendable, Hashable {
        /// The instance whose claims are its own (`cluster.instanceID` in iotd.yaml). Default `local`.
        public var instanceID: String
        /// How long another instance's claim is kept before ``PostgresOutbox/releaseClaims(_:)`` takes it back.
        /// Default 5 minutes: longer than any send (a notifier's timeout).
        public var claimLease: Duration

        /// Creates a configuration; every parameter has its documented default.
        public init(instanceID: String = "local", claimLease: Duration = .seconds(300)) {
            self.instanceID = instanceID
            self.claimLease = claimLease
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    let storage: PostgresStorage

    /// Creates an outbox on `storage`; the table is created on each tenant's first use.
    public init(storage: PostgresStorage, configuration: Configuration = Configuration()) {
        self.storage = storage
        self.configuration = configuration
    }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.outbox(
          seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE, ordering_key text, created_at bigint NOT NULL,
          next_attempt_at bigint NOT NULL, attempts integer NOT NULL, status text NOT NULL, last_error text,
          delivered_at bigint, claimed_by text, claimed_at bigint, doc text NOT NULL);
        CREATE INDEX IF NOT EXISTS outbox_status ON {schema}.outbox(status, created_at, seq);
        CREATE INDEX IF NOT EXISTS outbox_due ON {schema}.outbox(status, next_attempt_at);
        CREATE INDEX IF NOT EXISTS outbox_ordering ON {schema}.outbox(ordering_key, created_at, seq)
          WHERE ordering_key IS NOT NULL
        """

    func schema(_ tenant: TenantID) async throws -> String {
        try await storage.schema(of: tenant, component: "outbox", version: 1, Self.ddl)
    }

    var logger: Logger { storage.logger }

    static let columns = "id, created_at, next_attempt_at, attempts, status, last_error, doc"
    typealias Row = (String, Int64, Int64, Int32, String, String?, String)

    private static func message(_ row: Row) throws -> OutboxMessage {
        guard let status = OutboxMessage.Status(rawValue: row.4) else {
            throw IoTError(
                .storage,
                "outbox message '\(row.0)' has an unknown status '\(row.4)'; the database was changed outside iotd or is damaged"
            )
        }
        var m: OutboxMessage
        do {
            m = try JSONDecoder().decode(OutboxMessage.self, from: Data(row.6.utf8))
        } catch {
            throw IoTError(
                .storage,
                "outbox message '\(row.0)' cannot be read (\(error)); the database was changed outside iotd or is damaged"
            )
        }
        m.createdAt = row.1
        m.nextAttemptAt = row.2
        m.attempts = Int(row.3)
        m.status = status
        m.lastError = row.5
        return m
    }

    private func messages(_ what: String, _ sql: String, _ binds: PostgresBindings) async throws -> [OutboxMessage] {
        try await storage.mapErrors(what) {
            let rows = try await storage.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            var result: [OutboxMessage] = []
            for try await row in rows.decode(Row.self) { result.append(try Self.message(row)) }
            return result
        }
    }

    /// Adds a message; ``IoTCore/IoTError/Code/conflict`` when its id exists.
    public func enqueue(_ scope: AccessScope, _ message: OutboxMessage) async throws {
        let schema = try await schema(scope.tenant)
        let doc = String(decoding: try JSONEncoder().encode(message), as: UTF8.self)
        try await storage.mapErrors("enqueue outbox message \(message.id)") {
            do {
                try await storage.client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(schema).outbox(id, ordering_key, created_at, next_attempt_at, attempts, status,
                              last_error, doc)
                            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                            """,
                        binds: {
                            var b = PostgresStorage.binds(message.id)
                            b.append(message.orderingKey)
                            b.append(message.createdAt)
                            b.append(message.nextAttemptAt)
                            b.append(Int32(clamping: message.attempts))
                            b.append(message.status.rawValue)
                            b.append(message.lastError)
                            b.append(doc)
                            return b
                        }()), logger: logger)
            } catch  where PostgresStorage.isUniqueViolation(error) {
                throw IoTError(.conflict, "outbox message '\(message.id)' already exists; enqueue it under a new id")
            }
        }
    }

    /// Claims up to `limit` due messages, oldest first, skipping rows another instance is claiming.
    public func claimDue(_ scope: AccessScope, now: Int64, limit: Int) async throws -> [OutboxMessage] {
        guard limit > 0 else { return [] }
        let schema = try await schema(scope.tenant)
        let sql = """
            WITH due AS (
              SELECT m.seq FROM \(schema).outbox AS m
              WHERE m.status = 'pending' AND m.next_attempt_at <= $1
                AND (m.ordering_key IS NULL OR NOT EXISTS (
                  SELECT 1 FROM \(schema).outbox AS e
                  WHERE e.ordering_key = m.ordering_key AND e.status IN ('pending', 'sending')
                    AND (e.created_at < m.created_at OR (e.created_at = m.created_at AND e.seq < m.seq))))
              ORDER BY m.created_at, m.seq
              LIMIT $2
              FOR UPDATE SKIP LOCKED
            )
            UPDATE \(schema).outbox AS o SET status = 'sending', claimed_by = $3,
              claimed_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
            FROM due WHERE o.seq = due.seq
            RETURNING o.seq, o.id, o.created_at, o.next_attempt_at, o.attempts, o.status, o.last_error, o.doc
            """
        let binds = PostgresStorage.binds(now, Int64(limit), configuration.instanceID)
        return try await storage.mapErrors("claim outbox messages") {
            let rows = try await storage.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            var claimed: [(seq: Int64, message: OutboxMessage)] = []
            for try await (seq, id, created, next, attempts, status, error, doc) in rows.decode(
                (Int64, String, Int64, Int64, Int32, String, String?, String).self)
            {
                claimed.append((seq, try Self.message((id, created, next, attempts, status, error, doc))))
            }
            // RETURNING has no order: oldest first, by creation time and then enqueue order.
            return claimed.sorted { ($0.message.createdAt, $0.seq) < ($1.message.createdAt, $1.seq) }.map(\.message)
        }
    }

    private func update(_ scope: AccessScope, id: String, _ what: String, _ sql: String, _ binds: PostgresBindings)
        async throws
    {
        let schema = try await schema(scope.tenant)
        let changed = try await storage.execute(
            what, sql.replacingOccurrences(of: "{outbox}", with: "\(schema).outbox") + " RETURNING id", binds)
        if changed == 0 {
            throw OutboxMessage.notFound(id, tenant: scope.tenant)
        }
    }

    /// Marks a message delivered.
    public func markDelivered(_ scope: AccessScope, id: String, at time: Int64) async throws {
        try await update(
            scope, id: id, "mark outbox message \(id) delivered",
            "UPDATE {outbox} SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, claimed_by = NULL WHERE id = $1",
            PostgresStorage.binds(id, time))
    }

    /// Puts a message back as pending, to be tried again at `nextAttemptAt`.
    public func markFailed(_ scope: AccessScope, id: String, error: String, nextAttemptAt: Int64) async throws {
        try await update(
            scope, id: id, "mark outbox message \(id) failed",
            """
            UPDATE {outbox} SET status = 'pending', attempts = attempts + 1, last_error = $2, next_attempt_at = $3,
              claimed_by = NULL
            WHERE id = $1
            """, PostgresStorage.binds(id, error, nextAttemptAt))
    }

    /// Marks a message a dead letter.
    public func markDeadLetter(_ scope: AccessScope, id: String, error: String) async throws {
        try await update(
            scope, id: id, "dead-letter outbox message \(id)",
            "UPDATE {outbox} SET status = 'dead_letter', attempts = attempts + 1, last_error = $2, claimed_by = NULL WHERE id = $1",
            PostgresStorage.binds(id, error))
    }

    /// Puts back this instance's claims and claims older than the lease; returns how many.
    @discardableResult
    public func releaseClaims(_ scope: AccessScope) async throws -> Int {
        let schema = try await schema(scope.tenant)
        // Claim times are the database server's clock, the same for every instance.
        return try await storage.execute(
            "release outbox claims",
            """
            UPDATE \(schema).outbox SET status = 'pending', claimed_by = NULL
            WHERE status = 'sending' AND (claimed_by = $1 OR claimed_by IS NULL
              OR claimed_at < (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $2)
            RETURNING id
            """, PostgresStorage.binds(configuration.instanceID, configuration.claimLease.inMilliseconds))
    }

    /// Puts a dead letter back in the queue at `time`; ``IoTCore/IoTError/Code/conflict`` for any other status.
    public func retry(_ scope: AccessScope, id: String, at time: Int64) async throws {
        let schema = try await schema(scope.tenant)
        let logger = self.logger
        let status: String? = try await storage.mapErrors("retry outbox message \(id)") {
            try await storage.client.withTransaction(logger: logger) { c in
                let rows = try await c.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT status FROM \(schema).outbox WHERE id = $1 FOR UPDATE",
                        binds: PostgresStorage.binds(id)), logger: logger)
                var status: String?
                for try await s in rows.decode(String.self) { status = s }
                if status == "dead_letter" {
                    try await c.query(
                        PostgresQuery(
                            unsafeSQL:
                                "UPDATE \(schema).outbox SET status = 'pending', attempts = 0, next_attempt_at = $2 WHERE id = $1",
                            binds: PostgresStorage.binds(id, time)), logger: logger)
                }
                return status
            }
        }
        if let refusal = OutboxMessage.retryRefusal(status, id: id, tenant: scope.tenant) { throw refusal }
    }

    /// The message `id`, or `nil`.
    public func message(_ scope: AccessScope, id: String) async throws -> OutboxMessage? {
        let schema = try await schema(scope.tenant)
        return try await messages(
            "read outbox message \(id)", "SELECT \(Self.columns) FROM \(schema).outbox WHERE id = $1",
            PostgresStorage.binds(id)
        ).first
    }

    /// Up to `limit` messages with `status`, oldest first.
    public func messages(_ scope: AccessScope, status: OutboxMessage.Status, limit: Int) async throws -> [OutboxMessage]
    {
        guard limit > 0 else { return [] }
        let schema = try await schema(scope.tenant)
        return try await messages(
            "read the outbox",
            "SELECT \(Self.columns) FROM \(schema).outbox WHERE status = $1 ORDER BY created_at, seq LIMIT $2",
            PostgresStorage.binds(status.rawValue, Int64(limit)))
    }
}
