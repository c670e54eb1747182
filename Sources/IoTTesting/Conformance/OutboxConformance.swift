public import IoTCore

/// The conformance suite of ``Outbox``: every line of its contract as a check.
///
/// ```swift
/// @Test(arguments: OutboxConformance.checks)
/// func outbox(_ check: ConformanceCheck<any Outbox>) async throws {
///     try await check.run(InMemoryOutbox())
/// }
/// ```
///
/// Beyond the protocol's text, the suite requires: "oldest" is by ``OutboxMessage/createdAt`` and then
/// enqueue order; ``Outbox/markDelivered(_:id:at:)`` also counts the (successful) attempt; marking an
/// unknown id throws ``IoTError/Code/notFound``; dead letters and delivered messages do not block their
/// ordering key.
public enum OutboxConformance {
    typealias Support = StoresConformanceSupport

    static let acme = AccessScope.tenant("acme")
    static let globex = AccessScope.tenant("globex")

    static func message(_ id: String, key: String? = nil, created: Int64, next: Int64? = nil) -> OutboxMessage {
        OutboxMessage(
            id: id, channel: "webhook", recipient: "https://example.com/hook", body: "body of \(id)", orderingKey: key,
            createdAt: created, nextAttemptAt: next)
    }

    static func claimIDs(_ store: any Outbox, now: Int64, limit: Int = 100) async throws -> [String] {
        try await store.claimDue(acme, now: now, limit: limit).map(\.id)
    }

    /// The checks.
    public static let checks: [ConformanceCheck<any Outbox>] = [
        ConformanceCheck("enqueued messages round-trip every field") { store in
            let full = OutboxMessage(
                id: "n-1", channel: "email", recipient: "ops@example.com", subject: "Pump 1 — overheat",
                body: "Temperature 97.5 °C\nsince 12:00", orderingKey: "alarm-7", createdAt: 1_700_000_000_000,
                nextAttemptAt: 1_700_000_005_000, attempts: 2, status: .pending, lastError: "503 from relay",
                format: .html,
                attachments: [
                    NotificationAttachment(name: "alarms.csv", contentType: "text/csv", data: Array("a,b\n1,2\n".utf8)),
                    NotificationAttachment(
                        name: "raw.bin", contentType: "application/octet-stream", data: [0, 255, 10]),
                ])
            let bare = OutboxMessage(
                id: "n-2", channel: "inbox", recipient: "u1", body: "", createdAt: 1_700_000_000_001)
            try await store.enqueue(acme, full)
            try await store.enqueue(acme, bare)
            try conformEqual(try await store.messages(acme, status: .pending, limit: 10), [full, bare], "pending")
        },
        ConformanceCheck("enqueueing an existing id throws conflict and keeps the original") { store in
            let first = message("n-1", created: 10)
            try await store.enqueue(acme, first)
            try await Support.expectError(.conflict, "duplicate id") {
                try await store.enqueue(acme, message("n-1", created: 20))
            }
            _ = try await store.claimDue(acme, now: 10, limit: 1)
            try await store.markDelivered(acme, id: "n-1", at: 11)
            try await Support.expectError(.conflict, "duplicate id of a delivered message") {
                try await store.enqueue(acme, message("n-1", created: 30))
            }
            try conformEqual(try await store.messages(acme, status: .pending, limit: 10), [], "nothing added")
            try conformEqual(
                try await store.messages(acme, status: .delivered, limit: 10).map(\.createdAt), [10], "original kept")
        },
        ConformanceCheck("claimDue claims due messages oldest first, up to limit, as sending") { store in
            try await store.enqueue(acme, message("m3", created: 30))
            try await store.enqueue(acme, message("m1", created: 10))
            try await store.enqueue(acme, message("m2", created: 20))
            try await store.enqueue(acme, message("later", created: 5, next: 1000))
            try await store.enqueue(acme, message("m2b", created: 20))
            let first = try await store.claimDue(acme, now: 100, limit: 2)
            try conformEqual(first.map(\.id), ["m1", "m2"], "first batch")
            try conformEqual(first.map(\.status), [.sending, .sending], "claimed messages are sending")
            try conformEqual(first[0].body, "body of m1", "claimed message content")
            try conformEqual(try await claimIDs(store, now: 100), ["m2b", "m3"], "the rest; ties in enqueue order")
            try conformEqual(try await claimIDs(store, now: 999), [], "nothing is claimed twice")
            try conformEqual(try await claimIDs(store, now: 1000), ["later"], "due at its nextAttemptAt")
            try conformEqual(try await store.claimDue(acme, now: 1000, limit: 0), [], "limit 0")
            try conformEqual(
                try await store.messages(acme, status: .sending, limit: 10).map(\.id),
                ["later", "m1", "m2", "m2b", "m3"], "sending, oldest first")
            try conformEqual(try await store.messages(acme, status: .pending, limit: 10), [], "none pending")
        },
        ConformanceCheck("an ordering key blocks later messages while an earlier one is pending or sending") { store in
            try await store.enqueue(acme, message("a1", key: "A", created: 10))
            try await store.enqueue(acme, message("a2", key: "A", created: 20))
            try await store.enqueue(acme, message("free", created: 30))
            try await store.enqueue(acme, message("b1", key: "B", created: 40))
            try conformEqual(try await claimIDs(store, now: 100), ["a1", "free", "b1"], "one per key")
            try conformEqual(try await claimIDs(store, now: 100), [], "a2 waits while a1 is sending")
            try await store.markDelivered(acme, id: "a1", at: 101)
            try conformEqual(try await claimIDs(store, now: 100), ["a2"], "a2 after a1 was delivered")

            try await store.enqueue(acme, message("c1", key: "C", created: 50))
            try await store.enqueue(acme, message("c2", key: "C", created: 60))
            try conformEqual(try await claimIDs(store, now: 100), ["c1"], "c1 first")
            try await store.markFailed(acme, id: "c1", error: "timeout", nextAttemptAt: 500)
            try conformEqual(try await claimIDs(store, now: 100), [], "a pending c1 that is not due still blocks c2")
            try conformEqual(try await claimIDs(store, now: 500), ["c1"], "c1 retried first")
            try await store.markDeadLetter(acme, id: "c1", error: "gone")
            try conformEqual(try await claimIDs(store, now: 500), ["c2"], "a dead letter does not block")
        },
        ConformanceCheck("markFailed returns a message to pending with attempts + 1, the error and the retry time") {
            store in
            try await store.enqueue(acme, message("m", created: 10))
            _ = try await store.claimDue(acme, now: 10, limit: 1)
            try await store.markFailed(acme, id: "m", error: "HTTP 503", nextAttemptAt: 200)
            var expected = message("m", created: 10, next: 200)
            expected.attempts = 1
            expected.lastError = "HTTP 503"
            try conformEqual(try await store.messages(acme, status: .pending, limit: 10), [expected], "after failure")
            try conformEqual(try await claimIDs(store, now: 199), [], "not before nextAttemptAt")
            try conformEqual(try await store.claimDue(acme, now: 200, limit: 1).first?.attempts, 1, "claimed again")
            try await store.markFailed(acme, id: "m", error: "HTTP 502", nextAttemptAt: 300)
            _ = try await store.claimDue(acme, now: 300, limit: 1)
            try await store.markDelivered(acme, id: "m", at: 301)
            let delivered = try await store.messages(acme, status: .delivered, limit: 10)
            try conformEqual(delivered.map(\.attempts), [3], "two failures and one delivery")
            try conformEqual(delivered.first?.lastError, "HTTP 502", "last error kept")
            try conformEqual(try await claimIDs(store, now: 10_000), [], "a delivered message is never claimed")
        },
        ConformanceCheck("markDeadLetter gives up: dead letter, attempts + 1, the reason; never claimed again") {
            store in
            try await store.enqueue(acme, message("m", created: 10))
            try await store.enqueue(acme, message("n", created: 20))
            _ = try await store.claimDue(acme, now: 10, limit: 1)
            try await store.markDeadLetter(acme, id: "m", error: "410 Gone")
            let dead = try await store.messages(acme, status: .deadLetter, limit: 10)
            try conformEqual(dead.map(\.id), ["m"], "dead letters")
            try conformEqual(dead.first?.attempts, 1, "attempts")
            try conformEqual(dead.first?.lastError, "410 Gone", "reason")
            try conformEqual(dead.first?.status, .deadLetter, "status")
            try conformEqual(try await claimIDs(store, now: 10_000), ["n"], "the dead letter is not claimed")
        },
        ConformanceCheck("releaseClaims turns every sending message back to pending and counts them") { store in
            for (i, id) in ["m1", "m2", "m3"].enumerated() {
                try await store.enqueue(acme, message(id, created: Int64(i)))
            }
            try conformEqual(try await claimIDs(store, now: 10, limit: 2), ["m1", "m2"], "claimed")
            try conformEqual(try await store.releaseClaims(acme), 2, "released")
            try conformEqual(try await store.releaseClaims(acme), 0, "nothing left to release")
            let pending = try await store.messages(acme, status: .pending, limit: 10)
            try conformEqual(pending.map(\.id), ["m1", "m2", "m3"], "all pending again")
            try conformEqual(pending.map(\.attempts), [0, 0, 0], "a release is not an attempt")
            try conformEqual(try await claimIDs(store, now: 10, limit: 2), ["m1", "m2"], "claimed again")
        },
        ConformanceCheck("retry puts a dead letter back: pending, due at the given time, attempts 0, error kept") {
            store in
            try await store.enqueue(acme, message("m", key: "A", created: 10))
            try await store.enqueue(acme, message("p", created: 20))
            _ = try await store.claimDue(acme, now: 10, limit: 1)
            try await store.markFailed(acme, id: "m", error: "HTTP 503", nextAttemptAt: 20)
            _ = try await store.claimDue(acme, now: 20, limit: 1)
            try await store.markDeadLetter(acme, id: "m", error: "401 from the relay")
            try await Support.expectError(.conflict, "retry of a pending message") {
                try await store.retry(acme, id: "p", at: 30)
            }
            try await Support.expectError(.notFound, "retry of an unknown message") {
                try await store.retry(acme, id: "x", at: 30)
            }
            try await store.retry(acme, id: "m", at: 500)
            let m = try await store.message(acme, id: "m")
            try conformEqual(m?.status, .pending, "status")
            try conformEqual(m?.attempts, 0, "attempts")
            try conformEqual(m?.nextAttemptAt, 500, "next attempt")
            try conformEqual(m?.lastError, "401 from the relay", "last error kept")
            try conformEqual(try await store.message(acme, id: "x"), nil, "unknown id")
            try conformEqual(try await claimIDs(store, now: 499), ["p"], "not before the given time")
            try conformEqual(try await claimIDs(store, now: 500), ["m"], "claimed again")
        },
        ConformanceCheck("marking an unknown message throws notFound") { store in
            try await store.enqueue(acme, message("m", created: 1))
            try await Support.expectError(.notFound, "markDelivered") {
                try await store.markDelivered(acme, id: "x", at: 1)
            }
            try await Support.expectError(.notFound, "markFailed") {
                try await store.markFailed(acme, id: "x", error: "e", nextAttemptAt: 1)
            }
            try await Support.expectError(.notFound, "markDeadLetter") {
                try await store.markDeadLetter(acme, id: "x", error: "e")
            }
            try await Support.expectError(.notFound, "a message of another tenant") {
                try await store.markDelivered(globex, id: "m", at: 1)
            }
        },
        ConformanceCheck("messages lists one status, oldest first, at most limit") { store in
            try await store.enqueue(acme, message("c", created: 30))
            try await store.enqueue(acme, message("a", created: 10))
            try await store.enqueue(acme, message("b", created: 20))
            try conformEqual(
                try await store.messages(acme, status: .pending, limit: 2).map(\.id), ["a", "b"], "limit 2")
            try conformEqual(try await store.messages(acme, status: .pending, limit: 0), [], "limit 0")
            try conformEqual(try await store.messages(acme, status: .delivered, limit: 10), [], "other status")
        },
        ConformanceCheck("tenants are isolated: queues, claims and releases are per tenant") { store in
            try await store.enqueue(acme, message("m", key: "A", created: 10))
            try await store.enqueue(globex, message("m", key: "A", created: 20))
            try conformEqual(try await claimIDs(store, now: 100), ["m"], "acme's claim")
            try conformEqual(
                try await store.claimDue(globex, now: 100, limit: 10).map(\.createdAt), [20],
                "globex's message is not blocked by acme's key")
            try conformEqual(try await store.releaseClaims(globex), 1, "globex's release")
            try conformEqual(
                try await store.messages(acme, status: .sending, limit: 10).map(\.id), ["m"], "acme's claim kept")
            try await store.markDelivered(acme, id: "m", at: 101)
            try conformEqual(
                try await store.messages(globex, status: .pending, limit: 10).map(\.attempts), [0], "globex untouched")
        },
    ]
}
