import IoTCore
import IoTRules
import IoTTesting
import Logging
import Testing

@Suite("From ingest to a stored alarm")
struct IngestToAlarmTests {
    @Test func ingestorFeedsTheEngineThroughPointObserver() async throws {
        let tenant: TenantID = "acme"
        let scope = AccessScope.tenant(tenant)
        let registry = InMemoryRegistryStore()
        try await registry.saveTenant(Tenant(id: tenant))
        try await registry.saveProduct(scope, Product(id: "pump", signals: [Signal(name: "temp")]))
        try await registry.saveDevice(scope, Device(uid: "pump-1", product: "pump"))
        let points = InMemoryPointStore()
        let alarms = InMemoryRuleStateStore()
        let clock = ManualClock(now: 1_700_000_000_000)
        let engine = RuleEngine(
            clock: clock, stateStore: alarms, pointStore: points, registry: registry, logger: Logger(label: "test"))
        try await engine.add(
            .range(RangeRule(id: "hot", devices: .product("pump"), signal: "temp", max: 80, debounce: .count(2))),
            tenant: tenant)
        let ingestor = Ingestor(
            journal: InMemoryJournal(), pointStore: points, registry: registry, clock: clock, observers: [engine],
            logger: Logger(label: "test"))
        let task = Task { try await ingestor.run() }
        defer { task.cancel() }
        while !ingestor.isReady { try await Task.sleep(for: .milliseconds(1)) }

        for t in [85, 90] {
            _ = try await ingestor.ingest(
                InboundMessage(transport: "test", deviceUID: "pump-1", text: #"{"temp": \#(t)}"#), parser: JSONParser(),
                identity: DeviceIdentity(tenant: tenant, deviceUID: "pump-1"))
        }
        var stored: [Alarm] = []
        for _ in 0..<2_000 where stored.isEmpty {
            try await Task.sleep(for: .milliseconds(1))
            stored = try await alarms.alarms(scope, query: AlarmQuery(ruleID: "hot", open: true))
        }
        #expect(stored.count == 1)
        #expect(stored.first?.originator == "pump-1" && stored.first?.lastValue == .number(90))
    }
}
