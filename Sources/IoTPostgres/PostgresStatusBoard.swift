import Foundation
public import IoTCore
import Logging
import PostgresNIO

/// What each instance of one PostgreSQL runs, as it last said: the statuses of the Modbus devices and CoAP
/// observations an instance owns, so that the management API of every instance shows them.
///
/// Table `status_board(kind, tenant, id, instance, doc, updated)` of the system schema, one row per (kind, tenant,
/// id): the instance that publishes an entry last owns its row.
///
/// ```swift
/// let board = PostgresStatusBoard(storage: storage)
/// try await board.publish(kind: "modbus", instance: "iotd-1", [.init(tenant: "acme", id: "plc-1", doc: json)])
/// let everyone = try await board.entries(kind: "modbus")
/// ```
public final class PostgresStatusBoard: Sendable {
    /// One published status.
    public struct Entry: Sendable, Hashable {
        /// The tenant.
        public var tenant: TenantID
        /// The thing's id in its kind (a device uid, an observation id).
        public var id: String
        /// The instance that published it.
        public var instance: String
        /// The status, as the publisher wrote it (JSON).
        public var doc: String
        /// When it was published (UTC ms, PostgreSQL's clock).
        public var updated: Int64

        /// Creates an entry to publish (``instance`` and ``updated`` are set by ``PostgresStatusBoard/publish(kind:instance:_:)``).
        public init(tenant: TenantID, id: String, doc: String, instance: String = "", updated: Int64 = 0) {
            self.tenant = tenant
            self.id = id
            self.doc = doc
            self.instance = instance
            self.updated = updated
        }
    }

    let storage: PostgresStorage

    /// Creates a board on `storage`; its table is created on first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.status_board(
          kind text NOT NULL, tenant text NOT NULL, id text NOT NULL, instance text NOT NULL, doc text NOT NULL,
          updated bigint NOT NULL, PRIMARY KEY(kind, tenant, id))
        """

    private func schema() async throws -> String {
        try await storage.systemSchema(component: "status-board", version: 1, Self.ddl)
    }

    /// Replaces what `instance` published of `kind` with `entries`.
    public func publish(kind: String, instance: String, _ entries: [Entry]) async throws {
        let schema = try await schema()
        let logger = storage.logger
        try await storage.mapErrors("publish the \(kind) statuses of instance \(instance)") {
            try await storage.client.withTransaction(logger: logger) { c in
                try await c.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(schema).status_board WHERE kind = $1 AND instance = $2",
                        binds: PostgresStorage.binds(kind, instance)), logger: logger)
                guard !entries.isEmpty else { return }
                try await c.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(schema).status_board(kind, tenant, id, instance, doc, updated)
                            SELECT $1, t, i, $2, d, (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                            FROM unnest($3::text[], $4::text[], $5::text[]) AS x(t, i, d)
                            ON CONFLICT (kind, tenant, id) DO UPDATE
                              SET instance = excluded.instance, doc = excluded.doc, updated = excluded.updated
                            """,
                        binds: PostgresStorage.binds(
                            kind, instance, entries.map(\.tenant.rawValue), entries.map(\.id), entries.map(\.doc))),
                    logger: logger)
            }
        }
    }

    /// Every published entry of `kind`, by any instance.
    public func entries(kind: String) async throws -> [Entry] {
        let schema = try await schema()
        return try await storage.mapErrors("read the \(kind) statuses") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL:
                        "SELECT tenant, id, instance, doc, updated FROM \(schema).status_board WHERE kind = $1",
                    binds: PostgresStorage.binds(kind)), logger: storage.logger)
            var out: [Entry] = []
            for try await (tenant, id, instance, doc, updated) in rows.decode(
                (String, String, String, String, Int64).self)
            {
                out.append(Entry(tenant: TenantID(tenant), id: id, doc: doc, instance: instance, updated: updated))
            }
            return out
        }
    }
}
