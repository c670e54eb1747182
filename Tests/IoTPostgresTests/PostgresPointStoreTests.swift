import Foundation
import IoTCore
import IoTPostgres
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 24, item 1: the PostgreSQL point store against a real PostgreSQL (initdb and pg_ctl, started and
/// stopped by each test).
@Suite struct PostgresPointStoreTests {
    /// The point store conformance suite, as the SQLite store passes it.
    @Test func passesThePointStoreConformanceSuite() async throws {
        try await withPostgresServer { server in
            try await runConformance(PointStoreConformance.checks, on: server) { PostgresPointStore(storage: $0) }
        }
    }

    /// Each instance keeps its own journal watermark in the same database; a tenant id too long for
    /// PostgreSQL's 63-byte names still gets a schema of its own.
    @Test func watermarksPerInstanceAndLongTenantIDs() async throws {
        try await withPostgresServer { server in
            try await withStorage(on: server) { storage in
                let a = PostgresPointStore(storage: storage, configuration: .init(instanceID: "a"))
                let b = PostgresPointStore(storage: storage, configuration: .init(instanceID: "b"))
                let point = Point(device: "d", signal: "s", time: 1_000, value: .number(1))
                try await a.write(PointBatch(tenant: "acme", points: [point], journalSequence: 42))
                try await b.write(PointBatch(tenant: "acme", points: [], journalSequence: 7))
                #expect(try await a.committedSequence(tenant: "acme") == 42)
                #expect(try await b.committedSequence(tenant: "acme") == 7)
                #expect(
                    try await b.range(
                        .tenant("acme"), series: point.series, from: 0, to: 2_000, limit: nil, order: .ascending)
                        == [point], "one database: b reads what a wrote")

                let long1 = TenantID(String(repeating: "a", count: 63) + "1")
                let long2 = TenantID(String(repeating: "a", count: 63) + "2")
                try await a.write(PointBatch(tenant: long1, points: [point], journalSequence: 1))
                #expect(try await a.latest(.tenant(long2), device: "d", signals: nil) == [])
                #expect(try await a.latest(.tenant(long1), device: "d", signals: nil) == [point])
            }
        }
    }
}

/// Issue 24, item 1: the PostgreSQL definition and statistics stores pass their conformance suites.
@Suite struct PostgresStoresTests {
    @Test func passTheirConformanceSuites() async throws {
        try await withPostgresServer { server in
            try await runConformance(DefinitionStoreConformance.checks, on: server) {
                PostgresDefinitionStore(storage: $0)
            }
            try await runConformance(StatisticsStoreConformance.checks, on: server) {
                PostgresStatisticsStore(storage: $0)
            }
        }
    }
}
