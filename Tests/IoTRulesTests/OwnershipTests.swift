import IoTCore
import IoTRules
import IoTTesting
import Logging
import Synchronization
import Testing

/// Issue 24, item 5: a device's rules run on one instance at a time; the others send it the device's points, and
/// the instance that takes over after a death continues from the state saved last.
@Suite("One owner per originator across instances")
struct OwnershipTests {
    /// Hands what one engine forwards straight to the other engines, as `PostgresRuleRelay` does across processes.
    final class Relay: RuleForwarding {
        let engines = Mutex<[String: RuleEngine]>([:])
        let forwarded = Mutex<[String: Int]>([:])

        func forward(_ batch: PointBatch, to instance: String) async {
            forwarded.withLock { $0[instance, default: 0] += batch.points.count }
            guard let engine = engines.withLock({ $0[instance] }) else { return }  // a dead instance
            await engine.forwardedPoints(batch)
        }

        func alarmChanged(tenant: TenantID, ruleID: String, originator: String, to instance: String) async {
            guard let engine = engines.withLock({ $0[instance] }) else { return }
            await engine.alarmChangedElsewhere(tenant: tenant, ruleID: ruleID, originator: originator)
        }
    }

    let tenant: TenantID = "acme"
    let hot = AlarmRule.range(
        RangeRule(id: "hot", devices: .product("pump"), signal: "temp", max: 80, debounce: .count(3), hysteresis: 2))

    func point(_ device: String, _ value: Double, _ time: Int64) -> PointBatch {
        PointBatch(
            tenant: tenant, points: [Point(device: device, signal: "temp", time: time, value: .number(value))],
            journalSequence: 0)
    }

    @Test func ownershipIsTheSameOnEveryInstanceAndMovesOnlyWhatTheLeaverOwned() {
        let live = ["iotd-1", "iotd-2", "iotd-3"]
        let views = live.map { ClusterOwnership(instance: $0, live: live.reversed()) }
        var owned: [String: Int] = [:]
        var moved = 0
        for i in 0..<3_000 {
            let owners = Set(views.map { $0.owner(tenant: tenant, key: "dev-\(i)") })
            #expect(owners.count == 1, "every instance names the same owner")
            let owner = owners.first!
            owned[owner, default: 0] += 1
            #expect(views.filter { $0.isLocal(tenant: tenant, key: "dev-\(i)") }.map(\.instance) == [owner])
            let after = ClusterOwnership(instance: "iotd-1", live: ["iotd-1", "iotd-3"])
                .owner(tenant: tenant, key: "dev-\(i)")
            if owner != "iotd-2" { #expect(after == owner, "a device of a live instance stays") }
            if after != owner { moved += 1 }
        }
        #expect(owned.count == 3 && owned.values.allSatisfy { $0 > 800 }, "spread: \(owned)")
        #expect(moved == owned["iotd-2"], "only the leaver's devices move")
        // Lease lapsed (not in the live list): owns nothing.
        #expect(!ClusterOwnership(instance: "iotd-9", live: live).isLocal(tenant: tenant, key: "dev-1"))
        // No cluster information: everything here.
        #expect(ClusterOwnership(instance: "iotd-9", live: []).isLocal(tenant: tenant, key: "dev-1"))
    }

    @Test func aDevicesRulesRunOnItsOwnerAndItsStateMovesWhenTheOwnerDies() async throws {
        let clock = ManualClock()
        let store = InMemoryRuleStateStore()
        let registry = InMemoryRegistryStore()
        try await registry.saveTenant(Tenant(id: tenant))
        let relay = Relay()
        var engines: [String: RuleEngine] = [:]
        for id in ["a", "b"] {
            let e = RuleEngine(
                clock: clock, stateStore: store, registry: registry, logger: Logger(label: "rules-\(id)"))
            await e.setForwarding(relay)
            try await e.add(hot, tenant: tenant)
            await e.ownershipChanged(ClusterOwnership(instance: id, live: ["a", "b"]))
            engines[id] = e
        }
        relay.engines.withLock { $0 = engines }
        let a = engines["a"]!
        let b = engines["b"]!
        // A device B evaluates, whose points all reach A (its connection is there).
        let device = try #require(
            (0..<100).map { "pump-\($0)" }.first {
                ClusterOwnership(instance: "a", live: ["a", "b"]).owner(tenant: tenant, key: $0) == "b"
            })
        try await registry.saveDevice(.tenant(tenant), Device(uid: device, product: "pump"))
        for i in 0..<3 { await a.pointsCommitted(point(device, 90, clock.now() + Int64(i))) }
        await a.flush()
        await b.flush()
        #expect(await a.evaluationCount == 0, "A evaluated nothing of B's device")
        #expect(relay.forwarded.withLock { $0["b"] } == 3)
        let open = try await store.openAlarm(.tenant(tenant), ruleID: "hot", originator: device)
        #expect(open?.occurrences == 1, "raised once, by B")
        #expect(await b.openAlarms(.tenant(tenant)).map(\.id) == [open?.id].compactMap { $0 })
        #expect(await a.openAlarms(.tenant(tenant)).isEmpty)

        // Acknowledged through A's API: B, which holds the alarm, sees it.
        let id = try #require(open?.id)
        _ = try await a.acknowledge(.tenant(tenant), alarmID: id)
        #expect(await b.openAlarms(.tenant(tenant)).first?.acknowledged == true)

        // Cleared by the device, then two points over the limit on B (debounce 2 of 3), saved.
        await a.pointsCommitted(point(device, 70, clock.now() + 10))
        #expect(try await store.openAlarm(.tenant(tenant), ruleID: "hot", originator: device) == nil, "closed")
        for i in 0..<2 { await a.pointsCommitted(point(device, 95, clock.now() + 20 + Int64(i))) }
        clock.advance(byMillis: 2_000)
        await b.runDueTimers()  // saves the state (persist interval 1 s)
        // B dies; A is alone and takes B's device over with its debounce count.
        relay.engines.withLock { $0["b"] = nil }
        await a.ownershipChanged(ClusterOwnership(instance: "a", live: ["a"]))
        await a.pointsCommitted(point(device, 96, clock.now()))
        await a.flush()
        let again = try await store.openAlarm(.tenant(tenant), ruleID: "hot", originator: device)
        #expect(again != nil && again?.id != id, "the third point over the limit raised a new alarm on A")
        #expect(await a.openAlarms(.tenant(tenant)).map(\.id) == [again?.id].compactMap { $0 })
    }

    @Test func anInstanceThatJoinsTakesOverWithTheStateTheOtherSaved() async throws {
        let clock = ManualClock()
        let store = InMemoryRuleStateStore()
        let registry = InMemoryRegistryStore()
        try await registry.saveTenant(Tenant(id: tenant))
        let relay = Relay()
        let a = RuleEngine(clock: clock, stateStore: store, registry: registry, logger: Logger(label: "a"))
        await a.setForwarding(relay)
        try await a.add(hot, tenant: tenant)
        await a.ownershipChanged(ClusterOwnership(instance: "a", live: ["a"]))
        relay.engines.withLock { $0["a"] = a }
        let device = try #require(
            (0..<100).map { "pump-\($0)" }.first {
                ClusterOwnership(instance: "a", live: ["a", "b"]).owner(tenant: tenant, key: $0) == "b"
            })
        try await registry.saveDevice(.tenant(tenant), Device(uid: device, product: "pump"))
        for i in 0..<2 { await a.pointsCommitted(point(device, 90, clock.now() + Int64(i))) }
        // B joins: A gives the device up (saving its state), B takes it with a count of 2.
        await a.ownershipChanged(ClusterOwnership(instance: "a", live: ["a", "b"]))
        let b = RuleEngine(clock: clock, stateStore: store, registry: registry, logger: Logger(label: "b"))
        await b.setForwarding(relay)
        try await b.add(hot, tenant: tenant)
        await b.ownershipChanged(ClusterOwnership(instance: "b", live: ["a", "b"]))
        relay.engines.withLock { $0["b"] = b }
        await a.pointsCommitted(point(device, 90, clock.now() + 5))
        await b.flush()
        #expect(try await store.openAlarm(.tenant(tenant), ruleID: "hot", originator: device) != nil)
        #expect(await b.openAlarms(.tenant(tenant)).count == 1)
        #expect(await a.openAlarms(.tenant(tenant)).isEmpty)
    }

    /// A saved state cut short (a damaged row) starts the originator fresh, not half-read: a joint rule's
    /// "alarming" flag read before the cut would keep the condition from ever raising.
    @Test func aStateCutShortStartsFresh() async throws {
        let clock = ManualClock()
        let store = InMemoryRuleStateStore()
        // The format version, alarming = true, then nothing.
        try await store.saveStates(.tenant(tenant), ruleID: "hot", states: ["room-1": [2, 1]])
        let engine = RuleEngine(clock: clock, stateStore: store, logger: Logger(label: "cut"))
        try await engine.add(
            .joint(
                JointRule(
                    id: "hot", parameters: [.init(name: "t", device: "room-1", signal: "temp")], severity: .minor,
                    originator: "room-1"
                ) { p in (p["t"] ?? nil).map { $0 > 30 } ?? false }),
            tenant: tenant)
        await engine.pointsCommitted(
            PointBatch(
                tenant: tenant,
                points: [Point(device: "room-1", signal: "temp", time: clock.now(), value: .number(35))],
                journalSequence: 0))
        #expect(await engine.openAlarms(.tenant(tenant)).count == 1, "the condition holds: raised")
    }
}
