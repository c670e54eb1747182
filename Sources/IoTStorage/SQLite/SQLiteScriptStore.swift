public import IoTCore

/// The default ``ScriptStore``: script parsers in the system database, one row per name.
///
/// ```swift
/// let scripts = SQLiteScriptStore(storage: storage)
/// let catalog = ParserCatalog(registry: parsers, factory: factory, store: scripts, clock: SystemClock())
/// try await catalog.load()
/// ```
///
/// Schema: `scripts(name TEXT PRIMARY KEY, language, source, updated_at)`.
public final class SQLiteScriptStore: ScriptStore {
    private let databases: PreparedDatabases

    /// Creates a script store on `storage`'s system database; the table is created on first use.
    public init(storage: SQLiteStorage) {
        databases = PreparedDatabases(storage: storage, component: "scripts", version: 1, schema: Self.schema)
    }

    private static let schema = """
        CREATE TABLE IF NOT EXISTS scripts(
            name TEXT PRIMARY KEY NOT NULL,
            language TEXT NOT NULL,
            source TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        """

    private func db() async throws -> SQLiteDatabase {
        try await databases.system()
    }

    public func saveScript(_ script: ScriptSource) async throws {
        try await db().write { c in
            let s = try c.statement(
                """
                INSERT INTO scripts(name, language, source, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET language = excluded.language, source = excluded.source,
                    updated_at = excluded.updated_at
                """)
            s.bind(1, script.name)
            s.bind(2, script.language)
            s.bind(3, script.source)
            s.bind(4, script.updatedAt)
            try s.run()
        }
    }

    public func scripts() async throws -> [ScriptSource] {
        try await db().read { c in
            let s = try c.statement("SELECT name, language, source, updated_at FROM scripts ORDER BY name")
            defer { s.reset() }
            var result: [ScriptSource] = []
            while try s.step() { result.append(Self.script(s)) }
            return result
        }
    }

    public func script(named name: String) async throws -> ScriptSource? {
        try await db().read { c in
            let s = try c.statement("SELECT name, language, source, updated_at FROM scripts WHERE name = ?")
            defer { s.reset() }
            s.bind(1, name)
            return try s.step() ? Self.script(s) : nil
        }
    }

    @discardableResult
    public func deleteScript(named name: String) async throws -> Bool {
        try await db().write { c in
            let s = try c.statement("DELETE FROM scripts WHERE name = ?")
            s.bind(1, name)
            try s.run()
            return c.changes > 0
        }
    }

    private static func script(_ s: Statement) -> ScriptSource {
        ScriptSource(name: s.string(0), language: s.string(1), source: s.string(2), updatedAt: s.int64(3))
    }
}
