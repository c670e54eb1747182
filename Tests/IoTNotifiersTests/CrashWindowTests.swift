import Foundation
import IoTCore
import IoTRules
import IoTStorage
import IoTTestSupport
import IoTTesting
import Testing

/// The window between storing an alarm change and enqueueing its notifications: a process that dies
/// there must not lose the notification. The death is injected deterministically: a handler that never
/// returns stands in for the process stopping right after the alarm was stored.
@Suite(.serialized) struct CrashWindowTests {
    /// Never finishes handling (until cancelled): the process "dies" inside the window.
    struct StallingHandler: AlarmEventHandler {
        func handle(_ event: AlarmEvent) async { try? await Task.sleep(for: .seconds(3600)) }
    }

    func makeRegistry() async throws -> InMemoryRegistryStore {
        let registry = InMemoryRegistryStore()
        try await registry.saveTenant(Tenant(id: "acme"))
        try await registry.saveProduct(acme, Product(id: "pump", signals: [Signal(name: "temp")]))
        try await registry.saveDevice(acme, Device(uid: "pump-1", product: "pump", name: "Pump One"))
        return registry
    }

    @Test func anAlarmStoredButNotYetNotifiedIsNotifiedAtTheNextStart() async throws {
        let dir = TemporaryDirectory("notify-crash-window")
        let rule = AlarmRule.range(
            RangeRule(id: "overheat", devices: .product("pump"), signal: "temp", max: 80, severity: .critical))
        let policy = RoutingPolicy(id: "ops", targets: [RoutingTarget(channel: "inbox", recipients: ["alice"])])

        // First process: the alarm is stored, then it stops before the router enqueues anything.
        let storage1 = try SQLiteStorage(configuration: .init(directory: dir.path), logger: testLogger)
        let states1 = SQLiteRuleStateStore(storage: storage1)
        let registry = try await makeRegistry()
        let engine1 = RuleEngine(clock: SystemClock(), stateStore: states1, registry: registry, logger: testLogger)
        try await engine1.add(rule, tenant: "acme")
        await engine1.addHandler(StallingHandler())
        let outbox1 = SQLiteOutbox(storage: storage1)
        let router1 = NotificationRouter(outbox: outbox1, registry: registry, clock: SystemClock(), logger: testLogger)
        try await router1.savePolicy(policy, tenant: "acme")
        await engine1.addHandler(router1)
        let dying = Task {
            await engine1.pointsCommitted(
                PointBatch(
                    tenant: "acme",
                    points: [Point(device: "pump-1", signal: "temp", time: SystemClock().now(), value: .number(97.5))],
                    journalSequence: 1))
        }
        defer { dying.cancel() }
        #expect(
            try await eventually(10) {
                (try await states1.alarms(acme, query: AlarmQuery(open: true))).count == 1
            }, "the alarm is stored")
        try await Task.sleep(for: .milliseconds(200))
        #expect(
            try await outbox1.messages(acme, status: .pending, limit: 10).isEmpty,
            "nothing was enqueued before the 'crash'")

        // Next start: a new engine and router on the same files hand the stored event on.
        let storage2 = try SQLiteStorage(configuration: .init(directory: dir.path), logger: testLogger)
        let states2 = SQLiteRuleStateStore(storage: storage2)
        let engine2 = RuleEngine(clock: SystemClock(), stateStore: states2, registry: registry, logger: testLogger)
        try await engine2.add(rule, tenant: "acme")
        let outbox2 = SQLiteOutbox(storage: storage2)
        let router2 = NotificationRouter(outbox: outbox2, registry: registry, clock: SystemClock(), logger: testLogger)
        try await router2.savePolicy(policy, tenant: "acme")
        await engine2.addHandler(router2)
        await engine2.deliverUnhandledEvents()
        let pending = try await outbox2.messages(acme, status: .pending, limit: 10)
        #expect(pending.count == 1, "\(pending)")
        #expect(pending.first?.recipient == "alice")
        #expect(pending.first?.body.contains("Pump One") == true, "\(String(describing: pending.first?.body))")

        // Handled events are marked: a further start enqueues nothing more.
        await engine2.deliverUnhandledEvents()
        #expect(try await outbox2.messages(acme, status: .pending, limit: 10).count == 1)
        #expect(try await states2.unhandledAlarmEvents(acme).isEmpty)
        #expect(await engine2.storeFailureCount == 0)
    }

    @Test func eventsHandledInTheSameRunAreNotDeliveredAgain() async throws {
        let dir = TemporaryDirectory("notify-crash-window-normal")
        let storage = try SQLiteStorage(configuration: .init(directory: dir.path), logger: testLogger)
        let states = SQLiteRuleStateStore(storage: storage)
        let registry = try await makeRegistry()
        let outbox = SQLiteOutbox(storage: storage)
        let engine = RuleEngine(clock: SystemClock(), stateStore: states, registry: registry, logger: testLogger)
        try await engine.add(
            .range(RangeRule(id: "overheat", devices: .product("pump"), signal: "temp", max: 80)), tenant: "acme")
        let router = NotificationRouter(outbox: outbox, registry: registry, clock: SystemClock(), logger: testLogger)
        try await router.savePolicy(
            RoutingPolicy(id: "ops", targets: [RoutingTarget(channel: "inbox", recipients: ["alice"])]), tenant: "acme")
        await engine.addHandler(router)
        await engine.pointsCommitted(
            PointBatch(
                tenant: "acme",
                points: [Point(device: "pump-1", signal: "temp", time: SystemClock().now(), value: .number(97.5))],
                journalSequence: 1))
        #expect(try await outbox.messages(acme, status: .pending, limit: 10).count == 1)
        #expect(try await states.unhandledAlarmEvents(acme).isEmpty, "marked handled once the router enqueued")
        await engine.deliverUnhandledEvents()
        #expect(try await outbox.messages(acme, status: .pending, limit: 10).count == 1)
    }
}
