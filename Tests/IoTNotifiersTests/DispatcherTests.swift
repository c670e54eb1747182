import Foundation
import IoTCore
import IoTTesting
import Testing

@Suite struct DispatcherTests {
    func dispatcher(
        _ outbox: any Outbox, _ notifiers: [any Notifier],
        configure: (inout NotificationDispatcher.Configuration) -> Void = { _ in }
    ) -> NotificationDispatcher {
        var c = NotificationDispatcher.Configuration()
        c.initialBackoff = .milliseconds(50)
        c.maxBackoff = .milliseconds(200)
        c.pollInterval = .milliseconds(50)
        configure(&c)
        return NotificationDispatcher(
            configuration: c, outbox: outbox, notifiers: notifiers, clock: SystemClock(), tenants: { ["acme"] },
            logger: testLogger)
    }

    @Test func backoffDoublesUpToTheCap() {
        var c = NotificationDispatcher.Configuration()
        c.initialBackoff = .milliseconds(1_000)
        c.maxBackoff = .milliseconds(10_000)
        #expect((1...6).map { c.backoff(afterAttempts: $0) } == [1_000, 2_000, 4_000, 8_000, 10_000, 10_000])
        #expect(c.backoff(afterAttempts: 200) == 10_000)
    }

    /// Issue 17, item 1: every numeric setting has a documented range, checked at the extremes.
    @Test(arguments: [0, -1, Int.min, Int.max])
    func settingsOutsideTheirRangesAreRefusedNamingTheField(_ value: Int) {
        #expect(throws: Never.self) { try NotificationDispatcher.Configuration().validate() }
        let cases: [(String, (inout NotificationDispatcher.Configuration) -> Void)] = [
            ("maxAttempts", { $0.maxAttempts = value }),
            ("batchSize", { $0.batchSize = value }),
            ("maxHeld", { $0.maxHeld = value }),
            ("initialBackoffMillis", { $0.initialBackoff = .milliseconds(value) }),
            ("pollIntervalMillis", { $0.pollInterval = .milliseconds(value) }),
            ("tenantRefreshMillis", { $0.tenantRefreshInterval = .milliseconds(value) }),
            ("digestWindowMillis", { $0.defaultPolicy.digestWindow = .milliseconds(value) }),
            ("channels[robot].messagesPerMinute", { $0.channels["robot"] = .init(messagesPerMinute: value) }),
            ("channels[robot].burst", { $0.channels["robot"] = .init(burst: value) }),
            ("channels[robot].maxAttempts", { $0.channels["robot"] = .init(maxAttempts: value) }),
        ]
        for (field, change) in cases {
            var c = NotificationDispatcher.Configuration()
            change(&c)
            #expect {
                try c.validate()
            } throws: { error in
                (error as? IoTError)?.code == .invalidArgument
                    && (error as? IoTError)?.message.hasPrefix("\(field) is \(value);") == true
            }
        }
        // 0 is in range where it means "off"; the extremes are not.
        var c = NotificationDispatcher.Configuration()
        c.digestMaxListed = value
        c.defaultPolicy.digestThreshold = value
        if value == 0 {
            #expect(throws: Never.self) { try c.validate() }
        } else {
            #expect(throws: IoTError.self) { try c.validate() }
        }
        c = NotificationDispatcher.Configuration()
        c.maxBackoff = c.initialBackoff - .milliseconds(1)
        #expect(throws: IoTError.self) { try c.validate() }
    }

    @Test func retriesWithBackoffThenDelivers() async throws {
        let outbox = InMemoryOutbox()
        let hook = RecordingNotifier(channel: "webhook")
        hook.failNext(3, with: IoTError(.unavailable, "HTTP 503 from the receiver"))
        let d = dispatcher(outbox, [hook])
        try await outbox.enqueue(acme, outboxMessage("m1", channel: "webhook", created: 1))
        let start = Date()
        try await withDispatcher(d) {
            #expect(await eventually(30) { hook.sent.count == 1 })
        }
        // 50 + 100 + 200 ms of backoff at least.
        #expect(Date().timeIntervalSince(start) >= 0.33)
        #expect(hook.attempts == 4)
        let delivered = try await outbox.messages(acme, status: .delivered, limit: 10)
        #expect(delivered.map(\.id) == ["m1"])
        #expect(delivered.first?.attempts == 4)
        #expect(delivered.first?.lastError == "HTTP 503 from the receiver")
        let s = await d.statistics()["webhook"]
        #expect(s?.sent == 1 && s?.failed == 3 && s?.retried == 3 && s?.deadLettered == 0)
    }

    @Test func deadLettersAfterMaxAttemptsAndAtOnceOnPermanentErrors() async throws {
        let outbox = InMemoryOutbox()
        let flaky = RecordingNotifier(channel: "sms")
        flaky.failAlways(IoTError(.timeout, "the gateway did not answer in time"))
        let refused = RecordingNotifier(channel: "dingtalk")
        refused.failAlways(IoTError(.unauthorized, "dingtalk: the vendor answered code 310000 \"sign not match\""))
        let d = dispatcher(outbox, [flaky, refused]) { $0.maxAttempts = 3 }
        try await outbox.enqueue(acme, outboxMessage("s1", channel: "sms", created: 1))
        try await outbox.enqueue(acme, outboxMessage("d1", channel: "dingtalk", created: 2))
        try await outbox.enqueue(acme, outboxMessage("x1", channel: "nowhere", created: 3))
        try await withDispatcher(d) {
            #expect(
                await eventually(30) { (try? await outbox.messages(acme, status: .deadLetter, limit: 10).count) == 3 })
        }
        let dead = Dictionary(
            uniqueKeysWithValues: try await outbox.messages(acme, status: .deadLetter, limit: 10).map { ($0.id, $0) })
        #expect(dead["s1"]?.attempts == 3)
        #expect(
            dead["s1"]?.lastError?.contains("gave up after 3 attempts; last error: the gateway did not answer in time")
                == true)
        #expect(dead["d1"]?.attempts == 1, "a permanent error is not retried")
        #expect(dead["d1"]?.lastError?.contains("dingtalk refused the message (unauthorized)") == true)
        #expect(dead["d1"]?.lastError?.contains("sign not match") == true)
        #expect(dead["x1"]?.lastError?.contains("no notifier is configured for channel \"nowhere\"") == true)
        #expect(refused.attempts == 1)
        #expect(flaky.attempts == 3)
        #expect(await d.statistics()["sms"]?.deadLettered == 1)

        // A dead letter can be retried (management API: POST …/outbox/{id}/retry).
        refused.failAlways(nil)
        try await outbox.retry(acme, id: "d1", at: 0)
        try await withDispatcher(d) {
            #expect(await eventually(30) { refused.sent.count == 1 })
        }
    }

    @Test func stormOf500BecomesAtMostFiveMessagesPerRecipientAndLosesNothing() async throws {
        let outbox = InMemoryOutbox()
        let hook = RecordingNotifier(channel: "webhook")
        let inbox = RecordingNotifier(channel: "inbox")
        let d = dispatcher(outbox, [hook, inbox]) {
            $0.defaultPolicy = .init(digestThreshold: 3, digestWindow: .milliseconds(1_500))
        }
        try await withDispatcher(d) {
            let start = Date()
            for i in 0..<500 {
                try await outbox.enqueue(
                    acme, outboxMessage("w\(i)", channel: "webhook", key: "alarm-\(i)|webhook", created: Int64(i)))
                try await outbox.enqueue(
                    acme,
                    outboxMessage(
                        "i\(i)", channel: "inbox", recipient: "ops", key: "alarm-\(i)|inbox", created: Int64(i)))
                if i % 50 == 0 { await d.wake("acme") }
            }
            #expect(Date().timeIntervalSince(start) < 1.0, "500 alarms within one second")
            await d.wake("acme")
            #expect(
                await eventually(30) {
                    Set(hook.sent.flatMap(\.messageIDs)).count == 500
                        && Set(inbox.sent.flatMap(\.messageIDs)).count == 500
                })
        }
        for r in [hook, inbox] {
            #expect(r.sent.count <= 5, "\(r.channel): \(r.sent.map(\.messageIDs.count)) messages")
            #expect(r.sent.flatMap(\.messageIDs).count == 500, "each message exactly once")
            let digest = try #require(r.sent.first { $0.isDigest })
            #expect(digest.body.hasPrefix("\(digest.messageIDs.count) notifications:"))
            #expect(digest.body.contains("… and"))
        }
        #expect(try await outbox.messages(acme, status: .delivered, limit: 2_000).count == 1_000)
        #expect(await d.statistics()["webhook"]?.digests ?? 0 >= 1)
    }

    /// Issue 23, item 4: a report (an HTML body with attachments) in the middle of a storm is sent on its own,
    /// with its files; the plain messages around it are still digested.
    @Test func aReportInAStormIsNeverDigested() async throws {
        let outbox = InMemoryOutbox()
        let mail = RecordingNotifier(channel: "email")
        let d = dispatcher(outbox, [mail]) {
            $0.defaultPolicy = .init(digestThreshold: 1, digestWindow: .milliseconds(300))
        }
        for i in 0..<20 {
            var m = outboxMessage("m\(i)", channel: "email", created: Int64(i))
            if i == 10 {
                m.format = .html
                m.attachments = [NotificationAttachment(name: "summary.csv", contentType: "text/csv", data: [65, 10])]
            }
            try await outbox.enqueue(acme, m)
        }
        try await withDispatcher(d) {
            #expect(await eventually(30) { Set(mail.sent.flatMap(\.messageIDs)).count == 20 })
        }
        let report = try #require(mail.sent.first { $0.messageIDs.contains("m10") })
        #expect(report.messageIDs == ["m10"] && report.format == .html, "alone, as HTML")
        #expect(report.attachments.map(\.name) == ["summary.csv"])
        #expect(mail.sent.contains { $0.isDigest }, "the others are digested")
        #expect(mail.sent.filter { $0.isDigest }.allSatisfy { $0.attachments.isEmpty && $0.format == .text })
    }

    @Test func rateLimitQueuesInOrder() async throws {
        let outbox = InMemoryOutbox()
        let robot = RecordingNotifier(channel: "dingtalk")
        let d = dispatcher(outbox, [robot]) {
            $0.channels["dingtalk"] = .init(messagesPerMinute: 120, burst: 1, digestThreshold: 0)
        }
        for i in 0..<4 {
            try await outbox.enqueue(acme, outboxMessage("m\(i)", channel: "dingtalk", created: Int64(i)))
        }
        let start = Date()
        try await withDispatcher(d) {
            #expect(await eventually(30) { robot.sent.count == 4 })
        }
        // One at once, then one every 500 ms.
        #expect(Date().timeIntervalSince(start) >= 1.4)
        #expect(robot.sent.map(\.id) == ["m0", "m1", "m2", "m3"])
    }

    @Test func claimsLeftByACrashAreDeliveredAgain() async throws {
        let outbox = InMemoryOutbox()
        try await outbox.enqueue(acme, outboxMessage("m1", channel: "webhook", created: 1))
        _ = try await outbox.claimDue(acme, now: 10, limit: 10)  // a process claimed it, then died
        let hook = RecordingNotifier(channel: "webhook")
        try await withDispatcher(dispatcher(outbox, [hook])) {
            #expect(await eventually(30) { hook.sent.map(\.id) == ["m1"] })
        }
    }
}
