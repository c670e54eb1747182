import IoTCore
import IoTTesting
import Logging

/// A running ingestor over in-memory stores (from IoTCoreTests' harness), stopped by ``stop()``.
final class IngestHarness: Sendable {
    let points = InMemoryPointStore()
    let registry = InMemoryRegistryStore()
    let clock = ManualClock(now: 1_700_000_000_000)
    let ingestor: Ingestor
    let task: Task<Void, any Error>
    static let tenant: TenantID = "acme"
    var scope: AccessScope { .tenant(Self.tenant) }

    init() async throws {
        try await registry.saveTenant(Tenant(id: Self.tenant, policy: IngestPolicy()))
        try await registry.saveProduct(
            .tenant(Self.tenant),
            Product(
                id: "thermo",
                signals: [Signal(name: "temp"), Signal(name: "on", type: .bool), Signal(name: "fw", type: .text)]))
        try await registry.saveDevice(.tenant(Self.tenant), Device(uid: "t-1", product: "thermo"))
        ingestor = Ingestor(
            configuration: .init(), journal: InMemoryJournal(), pointStore: points, registry: registry, clock: clock,
            logger: Logger(label: "test"))
        let ingestor = self.ingestor
        task = Task { try await ingestor.run() }
        while !ingestor.isReady { try await Task.sleep(for: .milliseconds(1)) }
    }

    @discardableResult
    func send(_ text: String, parser: any Parser, device: String = "t-1") async throws(IoTError) -> Receipt {
        try await ingestor.ingest(
            InboundMessage(transport: "test", deviceUID: device, text: text), parser: parser,
            identity: DeviceIdentity(tenant: Self.tenant, deviceUID: device))
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    func series(_ device: String, _ signal: String) async throws -> [Point] {
        try await points.range(
            scope, series: SeriesKey(device: device, signal: signal), from: 0, to: .max, limit: nil, order: .ascending)
    }
}
