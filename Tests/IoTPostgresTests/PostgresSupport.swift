import Foundation
import IoTCore
import IoTPostgres
import IoTTestSupport
import IoTTesting
import Logging
import Synchronization
import Testing

private let prefixes = Atomic<Int>(0)

/// A running ``PostgresStorage`` on `server` with a schema prefix no other storage of this process uses, so its
/// stores start empty (or with `prefix`, another storage's, as a second instance or a restart would); the pool
/// stops when `body` returns.
func withStorage<T: Sendable>(
    on server: PostgresServer, maximumConnections: Int = 4, prefix: String? = nil,
    _ body: (PostgresStorage) async throws -> T
) async throws -> T {
    var logger = Logger(label: "iot.postgres.test")
    logger.logLevel = .error
    let storage = try PostgresStorage(
        configuration: .init(
            url: server.url, schemaPrefix: prefix ?? "t\(prefixes.add(1, ordering: .relaxed).newValue)",
            maximumConnections: maximumConnections),
        logger: logger)
    do {
        let result = try await body(storage)
        await storage.close()
        return result
    } catch {
        await storage.close()
        throw error
    }
}

/// Starts a PostgreSQL server for one test, runs `body` and stops the server by its PID.
func withPostgresServer<T: Sendable>(_ body: (PostgresServer) async throws -> T) async throws -> T {
    let server = try await onOwnThread { try PostgresServer() }
    defer { server.stop() }
    return try await body(server)
}

/// Runs every check of a conformance suite, each on a store of its own on one server; a failing check is recorded
/// as an issue naming it, and the others still run.
func runConformance<Store>(
    _ checks: [ConformanceCheck<Store>], on server: PostgresServer,
    makeStore: @escaping (PostgresStorage) async throws -> Store
) async throws {
    for check in checks {
        do {
            try await withStorage(on: server) { storage in
                try await check.run(try await makeStore(storage))
            }
        } catch {
            Issue.record("\(check.name): \(error)")
        }
    }
}
