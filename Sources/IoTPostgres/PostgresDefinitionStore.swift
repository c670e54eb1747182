import Foundation
public import IoTCore
import NIOCore
import PostgresNIO

/// A ``IoTCore/DefinitionStore`` in PostgreSQL: rules, jobs and the other definitions the API accepted, in
/// each tenant's schema, shared by every instance on the database.
///
/// Table (component `definitions`): `definitions(kind, id, body bytea, PRIMARY KEY(kind, id))`. Each save and
/// delete is announced with `pg_notify` on the channel `iot_definitions`, so the other instances apply it at once
/// (``followChanges(_:)``).
public final class PostgresDefinitionStore: DefinitionStore {
    let storage: PostgresStorage

    /// Creates a definition store on `storage`; the table is created on each tenant's first use.
    public init(storage: PostgresStorage) { self.storage = storage }

    static let ddl = """
        CREATE TABLE IF NOT EXISTS {schema}.definitions(
          kind text NOT NULL, id text NOT NULL, body bytea NOT NULL, PRIMARY KEY(kind, id))
        """

    static let channel = "iot_definitions"

    /// One announced change.
    struct Change: Codable {
        var t: TenantID
        var k: String
        var id: String
    }

    /// Tells the instances listening that `kind`/`id` of `tenant` changed (``PostgresScriptStore`` announces its
    /// scripts with no tenant); a failure is logged (they see it at their next start).
    static func announce(_ storage: PostgresStorage, _ tenant: TenantID, _ kind: String, _ id: String) async {
        guard let data = try? JSONEncoder().encode(Change(t: tenant, k: kind, id: id)) else { return }
        do {
            try await storage.notify(channel, String(decoding: data, as: UTF8.self), logger: storage.logger)
        } catch {
            storage.logger.warning(
                "a definition change was not announced to the other instances; they apply it at their next start",
                metadata: ["kind": "\(kind)", "id": "\(id)", "error": "\(error)"])
        }
    }

    /// Hands every definition saved or deleted through any instance on this database (this one included) to
    /// `handle` as (tenant, kind, id), until the task is cancelled; a script parser saved or deleted in a
    /// ``PostgresScriptStore`` comes with kind `parser-script`, its name as the id, and an empty tenant.
    public func followChanges(_ handle: @escaping @Sendable (TenantID, String, String) async -> Void) async {
        let decoder = JSONDecoder()
        await storage.listen(on: Self.channel, logger: storage.logger) { payload in
            guard let c = try? decoder.decode(Change.self, from: Data(payload.utf8)) else { return }
            await handle(c.t, c.k, c.id)
        }
    }

    func schema(_ tenant: TenantID) async throws -> String {
        try await storage.schema(of: tenant, component: "definitions", version: 1, Self.ddl)
    }

    /// Adds or replaces the definition `kind`/`id`.
    public func saveDefinition(_ scope: AccessScope, kind: String, id: String, body: [UInt8]) async throws {
        let schema = try await schema(scope.tenant)
        try await storage.execute(
            "save the \(kind) definition \(id)",
            """
            INSERT INTO \(schema).definitions(kind, id, body) VALUES ($1, $2, $3)
            ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body
            """, PostgresStorage.binds(kind, id, ByteBuffer(bytes: body)))
        await Self.announce(storage, scope.tenant, kind, id)
    }

    /// The definitions of `kind`, by id.
    public func definitions(_ scope: AccessScope, kind: String) async throws -> [StoredDefinition] {
        let schema = try await schema(scope.tenant)
        return try await storage.mapErrors("read the \(kind) definitions") {
            let rows = try await storage.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT id, body FROM \(schema).definitions WHERE kind = $1 ORDER BY id",
                    binds: PostgresStorage.binds(kind)), logger: storage.logger)
            var result: [StoredDefinition] = []
            for try await (id, body) in rows.decode((String, ByteBuffer).self) {
                result.append(StoredDefinition(id: id, body: Array(buffer: body)))
            }
            return result
        }
    }

    /// Deletes the definition `kind`/`id`; `false` when there was none.
    @discardableResult
    public func deleteDefinition(_ scope: AccessScope, kind: String, id: String) async throws -> Bool {
        let schema = try await schema(scope.tenant)
        let deleted =
            try await storage.execute(
                "delete the \(kind) definition \(id)",
                "DELETE FROM \(schema).definitions WHERE kind = $1 AND id = $2 RETURNING id",
                PostgresStorage.binds(kind, id)) > 0
        if deleted { await Self.announce(storage, scope.tenant, kind, id) }
        return deleted
    }
}
