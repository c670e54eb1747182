import Foundation
import IoTCore
import IoTProtocols
import IoTRules
import IoTStorage
import IoTTestSupport
import IoTTesting
import Testing

/// Alarm events from a real RuleEngine → NotificationRouter → SQLiteOutbox → NotificationDispatcher →
/// channels → the local sink.
@Suite(.serialized) struct PipelineTests {
    final class Pipeline {
        let dir = TemporaryDirectory("notify-pipeline")
        let storage: SQLiteStorage
        let outbox: SQLiteOutbox
        let inbox: SQLiteInbox
        let registry = InMemoryRegistryStore()
        let engine: RuleEngine
        let router: NotificationRouter
        let dispatcher: NotificationDispatcher

        init(
            port: Int, configuration: NotificationDispatcher.Configuration, devices: Int,
            engineClock: any IoTClock = SystemClock()
        ) async throws {
            storage = try SQLiteStorage(configuration: .init(directory: dir.path), logger: testLogger)
            outbox = SQLiteOutbox(storage: storage)
            inbox = SQLiteInbox(storage: storage)
            try await registry.saveTenant(Tenant(id: "acme"))
            try await registry.saveProduct(acme, Product(id: "pump", signals: [Signal(name: "temp")]))
            for i in 0..<devices {
                try await registry.saveDevice(acme, Device(uid: "pump-\(i)", product: "pump", name: "Pump \(i)"))
            }
            var notifiers = ChannelTests.channels(port: port)
            notifiers.append(InboxNotifier(channel: "inbox", inbox: inbox))
            dispatcher = NotificationDispatcher(
                configuration: configuration, outbox: outbox, notifiers: notifiers, clock: SystemClock(),
                tenants: { ["acme"] },
                logger: testLogger)
            let dispatcher = self.dispatcher
            router = NotificationRouter(
                outbox: outbox, registry: registry, clock: SystemClock(),
                channelFormats: [
                    "webhook": .subjectAndBody, "feishu": .markdown, "dingtalk": .markdown, "wecom": .markdown,
                    "slack": .markdown, "wechat": .subjectAndBody, "sms": .plain, "voice": .plain,
                    "inbox": .subjectAndBody,
                ],
                logger: testLogger, enqueued: { tenant in Task { await dispatcher.wake(tenant) } })
            engine = RuleEngine(
                clock: engineClock, stateStore: InMemoryRuleStateStore(), registry: registry, logger: testLogger)
            try await engine.add(
                .range(
                    RangeRule(id: "overheat", devices: .product("pump"), signal: "temp", max: 80, severity: .critical)),
                tenant: "acme")
            await engine.addHandler(router)
        }

        var sequence: UInt64 = 0
        func feed(_ values: [(String, Double)], flush: Bool = true, at time: Int64? = nil) async {
            sequence += 1
            let now = time ?? SystemClock().now()
            await engine.pointsCommitted(
                PointBatch(
                    tenant: "acme",
                    points: values.map { Point(device: $0.0, signal: "temp", time: now, value: .number($0.1)) },
                    journalSequence: sequence))
            if flush { await engine.flush() }
        }

        func count(_ status: OutboxMessage.Status) async -> Int {
            (try? await outbox.messages(acme, status: status, limit: 100_000).count) ?? -1
        }
    }

    @Test func stormOf500AlarmsReachesEachChannelAsAtMostFiveMessages() async throws {
        let port = ChildProcess.freeLoopbackPort()
        let sink = try Peer.httpSink(port: port)
        defer { sink.stop() }
        // The engine's clock stands still while the 500 samples are fed, so the alarms are raised within one
        // second of alarm time however loaded the machine is; router, outbox and dispatcher run on the system clock.
        let engineClock = ManualClock(now: SystemClock().now())
        // Default digest: 3 per 10 s.
        let p = try await Pipeline(port: port, configuration: .init(), devices: 500, engineClock: engineClock)
        try await p.router.savePolicy(
            RoutingPolicy(
                id: "all", match: EventMatch(events: [.raised]),
                targets: [
                    RoutingTarget(channel: "webhook"), RoutingTarget(channel: "feishu"),
                    RoutingTarget(channel: "dingtalk"),
                    RoutingTarget(channel: "wecom"), RoutingTarget(channel: "slack"),
                    RoutingTarget(channel: "sms", recipients: ["+8613800000000"]),
                    RoutingTarget(channel: "inbox", recipients: ["ops"]),
                ]), tenant: "acme")
        try await withDispatcher(p.dispatcher) {
            // Samples of one second (device time) raise the 500 alarms; a loaded machine may take longer to feed them.
            let t0 = engineClock.now()
            for batch in 0..<2 {
                await p.feed(
                    (0..<250).map { ("pump-\(batch * 250 + $0)", 95) }, flush: batch == 1, at: t0 + Int64(batch) * 500)
                engineClock.advance(byMillis: 400)
            }
            let raised = await p.engine.openAlarms(acme).map(\.startTime)
            #expect(raised.count == 500)
            #expect((raised.max() ?? 0) - (raised.min() ?? 0) < 1_000, "500 alarms raised within one second")
            #expect(await p.router.enqueuedCount == 3_500)
            #expect(await eventually(40) { await p.count(.delivered) == 3_500 })
        }
        for channel in ["webhook", "feishu", "dingtalk", "wecom", "slack", "sms"] {
            let records = sink.records(channel: channel)
            #expect(records.count <= 5 && records.count >= 2, "\(channel): \(records.count) messages")
            #expect(records.allSatisfy { $0["ok"] as? Bool == true }, "\(channel) refused something")
        }
        let ids = sink.records(channel: "webhook").flatMap {
            (($0["payload"] as? [String: Any])?["messageIDs"] as? [String]) ?? []
        }
        #expect(
            ids.count == 500 && Set(ids).count == 500, "every alarm exactly once in the webhook's messages and digests")
        let inbox = try await p.inbox.messages(acme, recipient: "ops", unreadOnly: true, limit: 100)
        #expect(inbox.count <= 5 && !inbox.isEmpty)
        #expect(await p.dispatcher.statistics()["webhook"]?.sent == 500)
    }

    @Test func sinkDownFor30sThenUpDeliversEverythingInOrderPerAlarm() async throws {
        let port = ChildProcess.freeLoopbackPort()
        var c = NotificationDispatcher.Configuration()
        c.initialBackoff = .milliseconds(500)
        c.maxBackoff = .milliseconds(4_000)
        c.maxAttempts = 100
        c.defaultPolicy = .init(digestThreshold: 0)  // one message per state change, to check the order
        let p = try await Pipeline(port: port, configuration: c, devices: 10)
        try await p.router.saveTemplate(
            try NotificationTemplate(
                id: "t-raised", kind: .alarmRaised, subject: "${alarm_id} raised",
                body: "${alarm_id} raised ${device_name}"),
            tenant: "acme")
        try await p.router.saveTemplate(
            try NotificationTemplate(
                id: "t-cleared", kind: .alarmCleared, subject: "${alarm_id} cleared",
                body: "${alarm_id} cleared ${device_name}"),
            tenant: "acme")
        try await p.router.savePolicy(
            RoutingPolicy(
                id: "ops", templates: ["raised": "t-raised", "cleared": "t-cleared"],
                targets: [
                    RoutingTarget(channel: "webhook"), RoutingTarget(channel: "feishu"),
                    RoutingTarget(channel: "dingtalk"),
                ]), tenant: "acme")
        var sink: Peer?
        defer { sink?.stop() }
        try await withDispatcher(p.dispatcher) {
            for round in 0..<2 {  // raise and clear twice: 10 devices × 4 state changes × 3 channels
                await p.feed((0..<10).map { ("pump-\($0)", 95) })
                await p.feed((0..<10).map { ("pump-\($0)", 20) })
                _ = round
            }
            #expect(await p.router.enqueuedCount == 120)
            try await Task.sleep(for: .seconds(30))
            #expect(await p.count(.delivered) == 0)
            let pending = try await p.outbox.messages(acme, status: .pending, limit: 1_000)
            #expect(pending.contains { $0.attempts >= 3 }, "retried while the sink was down")
            #expect(pending.filter { $0.attempts > 0 }.allSatisfy { $0.lastError?.contains("127.0.0.1") == true })
            sink = try Peer.httpSink(port: port)
            #expect(await eventually(40) { await p.count(.delivered) == 120 })
        }
        let s = try #require(sink)
        #expect(await p.count(.deadLetter) == 0)
        for channel in ["webhook", "feishu", "dingtalk"] {
            let records = s.records(channel: channel)
            #expect(
                records.count == 40, "\(channel): \(records.count) deliveries, want 40 (nothing lost, nothing twice)")
            #expect(records.allSatisfy { $0["ok"] as? Bool == true })
            // Per alarm, in order: the text starts with "<alarm id> raised|cleared".
            var perAlarm: [String: [String]] = [:]
            for r in records {
                let text = Self.text(channel, r["payload"] as? [String: Any] ?? [:])
                let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
                guard words.count >= 2 else {
                    Issue.record("\(channel): unexpected text \(text)")
                    continue
                }
                perAlarm[String(words[0]), default: []].append(String(words[1]))
            }
            // A cleared, unacknowledged alarm that is raised again is the same alarm (active again).
            #expect(perAlarm.count == 10, "\(channel): one alarm per device")
            for (alarm, events) in perAlarm {
                #expect(events == ["raised", "cleared", "raised", "cleared"], "\(channel) \(alarm): \(events)")
            }
        }
    }

    static func text(_ channel: String, _ payload: [String: Any]) -> String {
        switch channel {
        case "webhook": return payload["body"] as? String ?? ""
        case "dingtalk":
            return ((payload["markdown"] as? [String: Any])?["text"] as? String ?? "").replacingOccurrences(
                of: "**", with: "")
        default:
            let card = payload["card"] as? [String: Any]
            let element = (card?["elements"] as? [[String: Any]])?.first
            return (element?["content"] as? String ?? "").replacingOccurrences(of: "**", with: "")
        }
    }
}
