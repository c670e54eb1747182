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

    /// A batch is first written as new (a plain INSERT); one stored point among new ones makes that fail, and
    /// the batch is then merged: every point kept once, overwrites counted, rollups exact, on both paths; a
    /// tenant whose batch met stored points does not slow another tenant down.
    @Test func newBatchesAndBatchesMeetingStoredPointsAreBothExact() async throws {
        try await withPostgresServer { server in
            try await withStorage(on: server) { storage in
                let store = PostgresPointStore(storage: storage)
                let key = SeriesKey(device: "d", signal: "s")
                func p(_ t: Int64, _ v: Double) -> Point { Point(device: "d", signal: "s", time: t, value: .number(v)) }
                // New, with a different value for one time inside the batch: the later wins, counted once.
                let first = try await store.writeReporting(
                    PointBatch(tenant: "a", points: [p(1_000, 1), p(2_000, 2), p(1_000, 3)], journalSequence: 1))
                #expect(first.overwritten == 1)
                // New points around a stored one with another value, and a stored one with the same value.
                let second = try await store.writeReporting(
                    PointBatch(
                        tenant: "a", points: [p(3_000, 4), p(2_000, 20), p(1_000, 3), p(61_000, 5)],
                        journalSequence: 2))
                #expect(second.overwritten == 1)
                // Another tenant's new batch, and this tenant's next, new again.
                let other = try await store.writeReporting(
                    PointBatch(tenant: "b", points: [p(1_000, 7), p(1_000, 8)], journalSequence: 1))
                #expect(other.overwritten == 1)
                _ = try await store.writeReporting(PointBatch(tenant: "a", points: [p(62_000, 6)], journalSequence: 3))
                let back = try await store.range(
                    .tenant("a"), series: key, from: 0, to: 100_000, limit: nil, order: .ascending)
                #expect(back.map(\.time) == [1_000, 2_000, 3_000, 61_000, 62_000])
                #expect(back.map(\.value) == [.number(3), .number(20), .number(4), .number(5), .number(6)])
                let minutes = try await store.aggregate(
                    .tenant("a"), series: key, from: 0, to: 120_000, bucketMillis: 60_000)
                #expect(minutes.map(\.count) == [3, 2])
                #expect(minutes.map(\.sum) == [27, 11])
                let hour = try await store.aggregate(
                    .tenant("a"), series: key, from: 0, to: 3_600_000, bucketMillis: 3_600_000)
                #expect(hour.map(\.count) == [5])
                #expect(hour.first?.sum == 38)
                #expect(try await store.committedSequence(tenant: "a") == 3)
                #expect(
                    try await store.range(.tenant("b"), series: key, from: 0, to: 10_000, limit: nil, order: .ascending)
                        .map(\.value) == [.number(8)])
                // Values COPY's text format must carry exactly (the new path writes rows as text).
                let odd: [SignalValue] = [
                    .number(.infinity), .number(-.infinity), .number(-0.0), .number(0.1 + 0.2),
                    .number(.leastNonzeroMagnitude),
                    .text("tab\there\nnew line \\N \\x00"), .text("a\u{0}b"), .bool(true),
                ]
                let points = odd.enumerated().map {
                    Point(device: "o", signal: "v", time: Int64($0.offset), value: $0.element)
                }
                try await store.write(PointBatch(tenant: "c", points: points, journalSequence: 0))
                let read = try await store.range(
                    .tenant("c"), series: SeriesKey(device: "o", signal: "v"), from: 0, to: 100, limit: nil,
                    order: .ascending)
                #expect(read == points)
                var nan = try await store.range(
                    .tenant("c"), series: SeriesKey(device: "o", signal: "v"), from: 0, to: 1, limit: nil,
                    order: .ascending)
                try await store.write(
                    PointBatch(
                        tenant: "d", points: [Point(device: "o", signal: "v", time: 1, value: .number(.nan))],
                        journalSequence: 0))
                nan = try await store.range(
                    .tenant("d"), series: SeriesKey(device: "o", signal: "v"), from: 0, to: 10, limit: nil,
                    order: .ascending)
                #expect(nan.first?.value.numericValue?.isNaN == true)
            }
        }
    }
}

/// Retention on PostgreSQL: the retention service deletes every tenant's points older than the period through
/// the store, which trims the rollups so aggregates stay exact.
@Suite struct PostgresRetentionTests {
    @Test func theRetentionServiceDeletesOldPointsOfEveryTenant() async throws {
        try await withPostgresServer { server in
            try await withStorage(on: server) { storage in
                let store = PostgresPointStore(storage: storage)
                let day: Int64 = 86_400_000
                let now: Int64 = 1_700_000_000_000 / day * day + 12 * 3_600_000
                let key = SeriesKey(device: "d", signal: "s")
                for tenant in ["a", "b"] as [TenantID] {
                    // One point a minute for three days before now.
                    let points = stride(from: now - 3 * day, to: now, by: 60_000).map {
                        Point(device: "d", signal: "s", time: $0, value: .number(1))
                    }
                    try await store.write(PointBatch(tenant: tenant, points: points, journalSequence: 1))
                }
                let clock = ManualClock(now: now)
                let service = RetentionService(
                    store: store, retention: .seconds(86_400), tenants: { ["a", "b"] }, clock: clock)
                let deleted = await service.runOnce()
                #expect(deleted == 2 * 2 * 1_440, "two days of minutes in each of two tenants")
                for tenant in ["a", "b"] as [TenantID] {
                    let left = try await store.range(
                        .tenant(tenant), series: key, from: 0, to: now, limit: nil, order: .ascending)
                    #expect(left.count == 1_440 && left.first?.time == now - day)
                    let hours = try await store.aggregate(
                        .tenant(tenant), series: key, from: now - 3 * day, to: now, bucketMillis: 3_600_000)
                    #expect(hours.map(\.count).reduce(0, +) == 1_440, "the rollups were trimmed too")
                }
                #expect(await service.runOnce() == 0, "nothing more to delete")
                let keepAll = RetentionService(store: store, retention: nil, tenants: { ["a"] }, clock: clock)
                #expect(await keepAll.runOnce() == 0)
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

/// Issue 24, item 1: the PostgreSQL registry passes the registry conformance suite.
@Suite struct PostgresRegistryStoreTests {
    @Test func passesTheRegistryConformanceSuite() async throws {
        try await withPostgresServer { server in
            try await runConformance(RegistryStoreConformance.checks, on: server) { PostgresRegistryStore(storage: $0) }
        }
    }

    /// Deleting a tenant drops its schema: its points go with it, and the point store's ids of the old schema's
    /// series are not used for the new one.
    @Test func aDeletedTenantStartsEmptyEverywhere() async throws {
        try await withPostgresServer { server in
            try await withStorage(on: server) { storage in
                let registry = PostgresRegistryStore(storage: storage)
                let points = PostgresPointStore(storage: storage)
                try await registry.saveTenant(Tenant(id: "acme"))
                let old = [
                    Point(device: "d", signal: "a", time: 1, value: .number(1)),
                    Point(device: "d", signal: "b", time: 1, value: .number(2)),
                ]
                try await points.write(PointBatch(tenant: "acme", points: old, journalSequence: 5))
                #expect(try await registry.deleteTenant("acme"))
                try await registry.saveTenant(Tenant(id: "acme"))
                #expect(try await points.latest(.tenant("acme"), device: "d", signals: nil) == [])
                #expect(try await points.committedSequence(tenant: "acme") == 0)
                let new = Point(device: "d", signal: "b", time: 2, value: .text("x"))
                try await points.write(PointBatch(tenant: "acme", points: [new], journalSequence: 6))
                #expect(try await points.latest(.tenant("acme"), device: "d", signals: nil) == [new])
            }
        }
    }
}

/// Issue 24, items 1 and 5: rule state and alarms in PostgreSQL pass the rule state conformance suite.
@Suite struct PostgresRuleStateStoreTests {
    @Test func passesTheRuleStateConformanceSuite() async throws {
        try await withPostgresServer { server in
            try await runConformance(RuleStateStoreConformance.checks, on: server) {
                PostgresRuleStateStore(storage: $0)
            }
        }
    }
}

/// Issue 24, items 1 and 5: the outbox in PostgreSQL passes the outbox conformance suite.
@Suite struct PostgresOutboxTests {
    @Test func passesTheOutboxConformanceSuite() async throws {
        try await withPostgresServer { server in
            try await runConformance(OutboxConformance.checks, on: server) { PostgresOutbox(storage: $0) }
        }
    }

    /// Two instances claiming at once never take the same message; a restarted instance takes back only its own
    /// claims (another's, within its lease, stay claimed).
    @Test func twoInstancesNeverClaimOneMessageTwice() async throws {
        try await withPostgresServer { server in
            try await withStorage(on: server, maximumConnections: 8) { storage in
                let a = PostgresOutbox(storage: storage, configuration: .init(instanceID: "a"))
                let b = PostgresOutbox(storage: storage, configuration: .init(instanceID: "b"))
                let scope = AccessScope.tenant("acme")
                for i in 0..<200 {
                    try await a.enqueue(
                        scope,
                        OutboxMessage(
                            id: "m\(i)", channel: "email", recipient: "ops", body: "\(i)", createdAt: Int64(i)))
                }
                let claims = try await withThrowingTaskGroup(of: [String].self) { group in
                    for outbox in [a, b, a, b] {
                        group.addTask {
                            var ids: [String] = []
                            while true {
                                let batch = try await outbox.claimDue(scope, now: 1_000, limit: 7)
                                if batch.isEmpty { return ids }
                                ids += batch.map(\.id)
                            }
                        }
                    }
                    return try await group.reduce(into: [String]()) { $0 += $1 }
                }
                #expect(claims.count == 200 && Set(claims).count == 200, "each message claimed once: \(claims.count)")

                #expect(try await a.releaseClaims(scope) > 0)
                let stillClaimed = try await b.messages(scope, status: .sending, limit: 1_000)
                #expect(!stillClaimed.isEmpty && stillClaimed.count < 200, "b's claims stay while its lease runs")
                #expect(try await b.releaseClaims(scope) == stillClaimed.count)
                #expect(try await a.messages(scope, status: .pending, limit: 1_000).count == 200)
            }
        }
    }
}

/// Issue 24, item 1: device credentials in PostgreSQL pass the credential store conformance suite.
@Suite struct PostgresCredentialStoreTests {
    @Test func passesTheCredentialConformanceSuite() async throws {
        try await withPostgresServer { server in
            try await runConformance(CredentialStoreConformance.checks, on: server) {
                PostgresCredentialStore(storage: $0)
            }
        }
    }
}

/// Issue 24, item 1: users, roles, secrets and the audit log in PostgreSQL pass their conformance suites.
@Suite struct PostgresIdentityStoreTests {
    @Test func passIdentityAndAuditConformanceSuites() async throws {
        try await withPostgresServer { server in
            try await runConformance(IdentityStoreConformance.checks, on: server) {
                PostgresIdentityStore(storage: $0)
            }
            try await runConformance(AuditStoreConformance.checks, on: server) { PostgresAuditStore(storage: $0) }
        }
    }
}

/// Issue 24, item 1: scripts and the inbox in PostgreSQL.
@Suite struct PostgresScriptAndInboxTests {
    @Test func scriptsPassTheirSuiteAndTheInboxKeepsItsOrderAndReadMarks() async throws {
        try await withPostgresServer { server in
            try await runConformance(ScriptStoreConformance.checks, on: server) { PostgresScriptStore(storage: $0) }
            try await withStorage(on: server) { storage in
                let inbox = PostgresInbox(storage: storage)
                let acme = AccessScope.tenant("acme")
                for (id, time) in [("a", 10), ("b", 30), ("c", 20), ("d", 30)] {
                    try await inbox.add(
                        acme,
                        InboxMessage(
                            id: id, recipient: "ops", subject: "s \(id)", body: "b \(id)", createdAt: Int64(time)))
                }
                try await inbox.add(acme, InboxMessage(id: "a", recipient: "ops", body: "again", createdAt: 99))
                try await inbox.add(acme, InboxMessage(id: "x", recipient: "other", body: "x", createdAt: 5))
                #expect(
                    try await inbox.messages(acme, recipient: "ops", unreadOnly: false, limit: 10).map(\.id) == [
                        "d", "b", "c", "a",
                    ])
                #expect(try await inbox.markRead(acme, recipient: "ops", id: "b", at: 100))
                #expect(try await inbox.markRead(acme, recipient: "ops", id: "b", at: 200))
                #expect(try await !inbox.markRead(acme, recipient: "ops", id: "x", at: 100), "another's message")
                #expect(
                    try await inbox.messages(acme, recipient: "ops", unreadOnly: true, limit: 2).map(\.id) == [
                        "d", "c",
                    ])
                let b = try await inbox.messages(acme, recipient: "ops", unreadOnly: false, limit: 10).first {
                    $0.id == "b"
                }
                #expect(b?.readAt == 100 && b?.subject == "s b", "the first read counts")
                #expect(try await inbox.unreadCount(acme, recipient: "ops") == 3)
                #expect(
                    try await inbox.messages(.tenant("globex"), recipient: "ops", unreadOnly: false, limit: 10) == [])
            }
        }
    }
}

/// A server that does not answer is a clear error naming it, not a wait.
@Suite struct PostgresReachabilityTests {
    @Test func aServerThatDoesNotAnswerIsAClearError() async throws {
        let port = ChildProcess.freeLoopbackPort()  // nothing listens there
        let storage = try PostgresStorage(configuration: .init(url: "postgres://iot@127.0.0.1:\(port)/postgres"))
        defer { Task { await storage.close() } }
        let started = ContinuousClock.now
        do {
            try await storage.waitUntilReachable(within: .seconds(1))
            Issue.record("a closed port answered")
        } catch let error as IoTError {
            #expect(error.code == .unavailable && error.message.contains("127.0.0.1:\(port)"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
