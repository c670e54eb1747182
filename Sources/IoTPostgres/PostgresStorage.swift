import Foundation
public import IoTCore
public import Logging
public import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// A PostgreSQL database shared by several `iotd` instances: one schema per tenant.
///
/// Every PostgreSQL store (``PostgresPointStore``, …) takes the same `PostgresStorage`, so they share one
/// connection pool, running from the storage's creation until ``close()``. The storage is a
/// `ServiceLifecycle/Service`: put it first in the service group, so that its ``run()`` closes the pool after
/// everything that writes through it has stopped.
///
/// ```swift
/// let storage = try PostgresStorage(
///     configuration: .init(url: "postgres://iot@127.0.0.1:5432/iot", passwordFile: "/etc/iotd/pg-password"),
///     logger: logger)
/// let points = PostgresPointStore(storage: storage, configuration: .init(instanceID: "iotd-1"))
/// let group = ServiceGroup(services: [storage, ingestor], logger: logger)
/// ```
///
/// ## Layout
/// A tenant's tables live in the schema `<schemaPrefix>_<tenant>` (quoted, so the tenant's case is kept; a
/// name longer than PostgreSQL's 63 bytes is cut and ends in a hash of the tenant). Each store creates its
/// tables there on the tenant's first use (`CREATE … IF NOT EXISTS` under an advisory lock, so instances
/// starting together do not race) and records its schema version in the schema's `iot_schema` table; a
/// version newer than this release's is refused.
public final class PostgresStorage: Service, Sendable {
    /// Where the database is and how to reach it.
    public struct Configuration: Sendable, Hashable {
        /// `postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`. A password in
        /// the URL is taken; ``passwordFile`` is preferred (the URL is logged and kept in files).
        public var url: String
        /// The password (iotd reads it from `passwordFile` or `passwordEnv`, as every secret of its file); it
        /// wins over a password in ``url``.
        public var password: String?
        /// A file whose first line is the password; it wins over ``password``.
        public var passwordFile: String?
        /// The prefix of every tenant's schema name: 1–20 characters of a–z, 0–9 and `_`, starting with a
        /// letter. Default `iot`. Two installations may share a database with different prefixes.
        public var schemaPrefix: String
        /// The most connections the pool opens. Default 20.
        public var maximumConnections: Int

        /// Creates a configuration; every parameter but `url` has its documented default.
        public init(
            url: String, password: String? = nil, passwordFile: String? = nil, schemaPrefix: String = "iot",
            maximumConnections: Int = 20
        ) {
            self.url = url
            self.password = password
            self.passwordFile = passwordFile
            self.schemaPrefix = schemaPrefix
            self.maximumConnections = maximumConnections
        }

        /// Checks the URL, the prefix and the connection count (the password file is read when the storage is
        /// made).
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            let allowed = schemaPrefix.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z"))
                    || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: "_")
            }
            guard allowed, (1...20).contains(schemaPrefix.utf8.count),
                let first = schemaPrefix.utf8.first, first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z")
            else {
                throw IoTError(
                    .invalidArgument,
                    "postgres.schemaPrefix '\(schemaPrefix)' is not valid: use 1–20 characters of a–z 0–9 _, starting with a letter"
                )
            }
            try IoTLimits.checkSetting(maximumConnections, "postgres.maximumConnections", in: 1...1_000, unit: "")
            _ = try PostgresStorage.endpoint(url)
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    /// The connection pool (postgres-nio), for queries of your own beside the stores (each tenant's tables are in
    /// the schema `<schemaPrefix>_<tenant>`). It runs while ``run()`` does.
    public let client: PostgresClient
    let logger: Logger
    /// Schemas whose component tables exist: "schema/component".
    private let ensured = Mutex<Set<String>>([])
    private let generations = Mutex<[TenantID: Int]>([:])
    private let runner = Mutex<(task: Task<Void, Never>?, closed: Bool)>((nil, false))

    /// Reads the URL and the password file and makes the pool (which connects once ``run()`` runs).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a URL that is not `postgres://…`, or a setting out
    ///   of range; ``IoTCore/IoTError/Code/storage`` when the password file cannot be read.
    public init(configuration: Configuration, logger: Logger = Logger(label: "iot.postgres")) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        var client = try Self.clientConfiguration(configuration)
        client.options.maximumConnections = configuration.maximumConnections
        self.client = PostgresClient(configuration: client, backgroundLogger: logger)
        // The pool runs from now on (until close()): the first query, usually much later, finds it running.
        startIfNeeded()
    }

    /// Keeps the pool open until a graceful shutdown or cancellation, then closes it (``close()``). As a service
    /// it goes first in its group, so it is stopped last, after what writes through it.
    public func run() async throws {
        startIfNeeded()
        try? await gracefulShutdown()
        await close()
    }

    /// Starts the pool's run loop (at creation, and again on use unless closed), so stores work before ``run()``
    /// runs (a host that prepares its data before starting its services) and without it (a test).
    /// - Returns: `false` once the storage is closed.
    @discardableResult
    func startIfNeeded() -> Bool {
        runner.withLock { state in
            guard !state.closed else { return false }
            if state.task == nil {
                let client = self.client
                state.task = Task { await client.run() }
            }
            return true
        }
    }

    /// Waits until the database answers a query; a host calls it at start so that a wrong URL or a server that is
    /// down is a clear error instead of a wait (the pool keeps trying to connect, and queries wait for it).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unavailable`` naming the server when it has not answered within `limit`.
    public func waitUntilReachable(within limit: Duration = .seconds(15)) async throws {
        let endpoint = try Self.endpoint(configuration.url)
        let client = self.client
        let logger = self.logger
        let answered = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await client.query("SELECT 1", logger: logger)
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
        if !answered {
            throw IoTError(
                .unavailable,
                "PostgreSQL at \(endpoint.host):\(endpoint.port) did not answer within \(limit) (the log's \"Connection creation failed\" lines say why); check storage.postgres.url, the password and that the server runs"
            )
        }
    }

    /// Closes the pool's connections; later queries throw ``IoTCore/IoTError/Code/unavailable``.
    public func close() async {
        let task = runner.withLock { state in
            state.closed = true
            defer { state.task = nil }
            return state.task
        }
        task?.cancel()
        await task?.value
    }

    /// The parts of ``Configuration/url``, checked.
    struct Endpoint {
        var host: String
        var port: Int
        var user: String
        var password: String?
        var database: String?
        var tls: PostgresClient.Configuration.TLS
    }

    static func endpoint(_ text: String) throws(IoTError) -> Endpoint {
        guard let url = URLComponents(string: text), ["postgres", "postgresql"].contains(url.scheme ?? ""),
            let host = url.host, !host.isEmpty
        else {
            throw IoTError(
                .invalidArgument,
                "postgres.url '\(text)' is not a PostgreSQL URL; write postgres://USER@HOST:PORT/DATABASE")
        }
        guard let user = url.user, !user.isEmpty else {
            throw IoTError(.invalidArgument, "postgres.url names no user; write postgres://USER@HOST:PORT/DATABASE")
        }
        let tls: PostgresClient.Configuration.TLS
        switch url.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable" {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-full": tls = .require(.makeClientConfiguration())
        case let other:
            throw IoTError(
                .invalidArgument, "postgres.url has sslmode=\(other); use disable, prefer, require or verify-full")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        return Endpoint(
            host: host, port: url.port ?? 5432, user: user, password: url.password,
            database: database.isEmpty ? nil : database, tls: tls)
    }

    static func clientConfiguration(_ c: Configuration) throws -> PostgresClient.Configuration {
        var endpoint = try endpoint(c.url)
        if let password = c.password { endpoint.password = password }
        if let file = c.passwordFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw IoTError(
                    .storage, "cannot read postgres.passwordFile \(file); check that it exists and is readable")
            }
            endpoint.password = String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
        }
        return PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.user, password: endpoint.password,
            database: endpoint.database, tls: endpoint.tls)
    }

    /// The schema name of `tenant`, quoted.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a tenant id that is not valid.
    func schema(of tenant: TenantID) throws(IoTError) -> String {
        guard tenant.isValid else {
            throw IoTError(
                .invalidArgument, "tenant id '\(tenant)' is not valid: use 1–64 characters of A–Z a–z 0–9 - _")
        }
        let name = configuration.schemaPrefix + "_" + tenant.rawValue
        if name.utf8.count <= 63 { return "\"\(name)\"" }
        // FNV-1a of the tenant id: stable across releases and platforms.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in tenant.rawValue.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let suffix = "_" + String(hash, radix: 16)
        let kept = 63 - configuration.schemaPrefix.utf8.count - 1 - suffix.utf8.count
        return "\"\(configuration.schemaPrefix)_\(tenant.rawValue.prefix(kept))\(suffix)\""
    }

    /// The quoted schema of `tenant` with `component`'s tables created (once per process).
    ///
    /// `ddl` is idempotent (`CREATE … IF NOT EXISTS`) and refers to the schema as `{schema}`.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/storage`` when the schema holds a newer version of the component, or
    ///   the database cannot be reached.
    func schema(of tenant: TenantID, component: String, version: Int, _ ddl: String) async throws -> String {
        try await ensure(try schema(of: tenant), component: component, version: version, ddl, for: "tenant \(tenant)")
    }

    /// The quoted schema of what belongs to no tenant (the tenants, scripts): the prefix alone, which no tenant's
    /// schema (`<prefix>_<tenant>`) can be; with `component`'s tables created.
    func systemSchema(component: String, version: Int, _ ddl: String) async throws -> String {
        try await ensure(
            "\"\(configuration.schemaPrefix)\"", component: component, version: version, ddl, for: "the system")
    }

    /// How many times `tenant` was deleted in this process: a store that keeps ids of a tenant's rows compares it
    /// to drop them once the tenant's schema was dropped.
    func generation(of tenant: TenantID) -> Int { generations.withLock { $0[tenant] ?? 0 } }

    /// DDL of a one-row revision counter `{schema}.<counter>` (`id` 1, `value`) and of statement triggers that raise
    /// it after the `events` (`"INSERT OR UPDATE OR DELETE"`) of each table, whichever instance or SQL session
    /// makes the change; the trigger function is `{schema}.<function>`, each trigger `<table>_revised`.
    static func revisionCounterDDL(_ counter: String, function: String, raisedBy: [(table: String, events: String)])
        -> String
    {
        """
        CREATE TABLE IF NOT EXISTS {schema}.\(counter)(id integer PRIMARY KEY CHECK (id = 1), value bigint NOT NULL);
        INSERT INTO {schema}.\(counter)(id, value) VALUES (1, 0) ON CONFLICT DO NOTHING;
        CREATE OR REPLACE FUNCTION {schema}.\(function)() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN UPDATE {schema}.\(counter) SET value = value + 1 WHERE id = 1; RETURN NULL; END $$;

        """
            + raisedBy.map { table, events in
                """
                CREATE OR REPLACE TRIGGER \(table)_revised AFTER \(events) ON {schema}.\(table)
                  FOR EACH STATEMENT EXECUTE FUNCTION {schema}.\(function)()
                """
            }.joined(separator: ";\n")
    }

    /// The statements of `sql`, split at each `;` outside a `$$`-quoted body (a PL/pgSQL function's).
    static func statements(_ sql: String) -> [Substring] {
        var statements: [Substring] = []
        var start = sql.startIndex
        var quoted = false
        var i = sql.startIndex
        while i < sql.endIndex {
            if sql[i...].hasPrefix("$$") {
                quoted.toggle()
                i = sql.index(i, offsetBy: 2)
                continue
            }
            if sql[i] == ";" && !quoted {
                statements.append(sql[start..<i])
                start = sql.index(after: i)
            }
            i = sql.index(after: i)
        }
        statements.append(sql[start...])
        return statements
    }

    private func ensure(_ schema: String, component: String, version: Int, _ ddl: String, for owner: String)
        async throws -> String
    {
        let key = schema + "/" + component
        if ensured.withLock({ $0.contains(key) }) { return schema }
        let sql = ddl.replacingOccurrences(of: "{schema}", with: schema)
        let logger = self.logger
        try await mapErrors("create the \(component) tables of \(owner)") {
            try await client.withTransaction(logger: logger) { c in
                try await c.query("SELECT pg_advisory_xact_lock(hashtext(\(schema)))", logger: logger)
                try await c.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: logger)
                try await c.query(
                    PostgresQuery(
                        unsafeSQL:
                            "CREATE TABLE IF NOT EXISTS \(schema).iot_schema(component text PRIMARY KEY, version integer NOT NULL)"
                    ), logger: logger)
                let rows = try await c.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT version FROM \(schema).iot_schema WHERE component = $1",
                        binds: Self.binds(component)), logger: logger)
                var stored: Int32?
                for try await v in rows.decode(Int32.self) { stored = v }
                if let stored, Int(stored) > version {
                    throw IoTError(
                        .storage,
                        "schema \(schema) has \(component) version \(stored), newer than this release's \(version); upgrade iotd"
                    )
                }
                if stored == Int32(version) { return }
                for statement in Self.statements(sql) where !statement.allSatisfy(\.isWhitespace) {
                    try await c.query(PostgresQuery(unsafeSQL: String(statement)), logger: logger)
                }
                try await c.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(schema).iot_schema(component, version) VALUES ($1, $2)
                            ON CONFLICT (component) DO UPDATE SET version = excluded.version
                            """, binds: Self.binds(component, Int32(version))), logger: logger)
            }
        }
        ensured.withLock { _ = $0.insert(key) }
        return schema
    }

    /// Drops the tenant's schema and everything in it.
    public func deleteTenant(_ tenant: TenantID) async throws {
        let schema = try schema(of: tenant)
        try await mapErrors("drop the schema of tenant \(tenant)") {
            try await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \(schema) CASCADE"), logger: logger)
        }
        ensured.withLock { set in set = set.filter { !$0.hasPrefix(schema + "/") } }
        generations.withLock { $0[tenant, default: 0] += 1 }
    }

    /// Runs one statement; returns how many rows it returned (a `RETURNING` clause counts the rows changed).
    @discardableResult
    func execute(_ what: String, _ sql: String, _ binds: PostgresBindings = PostgresBindings()) async throws -> Int {
        try await mapErrors("\(what)") {
            let rows = try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            var n = 0
            for try await _ in rows { n += 1 }
            return n
        }
    }

    /// Binds of a query built from a string.
    static func binds(_ values: any PostgresDynamicTypeEncodable...) -> PostgresBindings {
        var b = PostgresBindings()
        for v in values { b.append(v) }
        return b
    }

    /// Runs `body`, turning PostgreSQL's errors into ``IoTCore/IoTError`` with what was being done.
    @discardableResult
    func mapErrors<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        if !startIfNeeded() {
            throw IoTError(.unavailable, "cannot \(what): the PostgreSQL storage is closed (the platform is stopping)")
        }
        do {
            return try await body()
        } catch let error as IoTError {
            throw error
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError as? IoTError { throw inner }
            throw IoTError(.storage, "cannot \(what) in PostgreSQL: \(Self.describe(error))")
        } catch {
            throw IoTError(.storage, "cannot \(what) in PostgreSQL: \(Self.describe(error))")
        }
    }

    /// Whether `error` (or the error inside a failed transaction) is a unique constraint violation (SQLSTATE 23505).
    static func isUniqueViolation(_ error: any Error) -> Bool {
        if let e = error as? PostgresTransactionError {
            return [e.closureError, e.commitError].contains { $0.map(isUniqueViolation) ?? false }
        }
        return (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }

    /// The server's message of an error (PSQLError hides it from `description`).
    static func describe(_ error: any Error) -> String {
        if let e = error as? PostgresTransactionError {
            return [e.beginError, e.closureError, e.commitError, e.rollbackError].compactMap { $0 }.map(describe)
                .joined(separator: "; ")
        }
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] {
                return message + (e.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            return "\(e.code)"
        }
        return "\(error)"
    }
}

extension PostgresStorage.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case url, password, passwordFile, schemaPrefix, maximumConnections }

    /// Reads `url` (required), `password`, `passwordFile`, `schemaPrefix` and `maximumConnections`
    /// (`storage.postgres` in iotd.yaml, where `passwordFile` and `passwordEnv` become `password`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let url = try c.decode(String.self, forKey: .url)
        var d = Self(url: url)
        d.password = try c.decodeIfPresent(String.self, forKey: .password)
        d.passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile)
        d.schemaPrefix = try c.decodeIfPresent(String.self, forKey: .schemaPrefix) ?? d.schemaPrefix
        d.maximumConnections = try c.decodeIfPresent(Int.self, forKey: .maximumConnections) ?? d.maximumConnections
        self = d
    }
}
