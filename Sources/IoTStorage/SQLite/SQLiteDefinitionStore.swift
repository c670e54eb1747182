public import IoTCore

/// The default ``DefinitionStore``: one table in each tenant's database.
///
/// ```swift
/// let definitions = SQLiteDefinitionStore(storage: storage)
/// let api = ManagementServer(..., definitions: definitions)   // rules and jobs added over the API persist
/// ```
///
/// Schema: `definitions(kind, id, body BLOB, PRIMARY KEY(kind, id))`.
public final class SQLiteDefinitionStore: DefinitionStore {
    private let databases: PreparedDatabases

    /// Creates a definition store on `storage`'s tenant databases; the table is created on first use.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "definitions", version: 1, schema: Self.schema)
    }

    private static let schema = """
        CREATE TABLE IF NOT EXISTS definitions(
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY(kind, id)
        ) WITHOUT ROWID;
        """

    private func db(_ scope: AccessScope) async throws -> SQLiteDatabase {
        try await databases.tenant(scope.tenant)
    }

    public func saveDefinition(_ scope: AccessScope, kind: String, id: String, body: [UInt8]) async throws {
        try await db(scope).write { c in
            let s = try c.statement(
                "INSERT INTO definitions(kind, id, body) VALUES (?, ?, ?) ON CONFLICT(kind, id) DO UPDATE SET body = excluded.body"
            )
            s.bind(1, kind)
            s.bind(2, id)
            s.bind(3, body)
            try s.run()
        }
    }

    public func definitions(_ scope: AccessScope, kind: String) async throws -> [StoredDefinition] {
        try await db(scope).read { c in
            let s = try c.statement("SELECT id, body FROM definitions WHERE kind = ? ORDER BY id")
            defer { s.reset() }
            s.bind(1, kind)
            var result: [StoredDefinition] = []
            while try s.step() { result.append(StoredDefinition(id: s.string(0), body: s.blob(1))) }
            return result
        }
    }

    @discardableResult
    public func deleteDefinition(_ scope: AccessScope, kind: String, id: String) async throws -> Bool {
        try await db(scope).write { c in
            let s = try c.statement("DELETE FROM definitions WHERE kind = ? AND id = ?")
            s.bind(1, kind)
            s.bind(2, id)
            try s.run()
            return c.changes > 0
        }
    }
}
