import Foundation
import HTTPTypes
import Hummingbird
import IoTCore
import IoTProtocols
import IoTRules
import IoTStorage
import IoTTestSupport
import IoTTesting
import Logging
import Synchronization

/// Notifications, side by side with a direct webhook POST to the same in-process sink (no ingest, no
/// rules, no outbox) measured in the same run:
/// - latency: alarm raised (a point posted to the Ingestor) → webhook received, p50/p99, while the
///   Ingestor takes a background load of ~10k msg/s (goal p99 ≤ 50 ms);
/// - throughput: notifications/s from the SQLite outbox through the dispatcher to the sink (8
///   recipients, so 8 deliveries in flight), against 8 tasks posting directly.
func runNotifyBenchmark(_ options: BenchOptions) async throws {
    let probes = options.smoke ? 20 : 300
    let throughputMessages = options.points ?? (options.smoke ? 200 : 5_000)
    let loadRate = options.smoke ? 2_000 : 10_000
    print(
        "== notify: \(probes) alarms under \(grouped(Double(loadRate))) msg/s of ingest; \(grouped(Double(throughputMessages))) outbox notifications"
    )
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let base = options.directory + "/notify"
    removeTree(base)

    // The sink: an in-process HTTP server that notes when each probe's notification arrives.
    let shared = NotifyShared()
    let router = Router()
    router.post("/hook") { request, _ -> HTTPResponse.Status in
        let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
        let now = monotonicSeconds()
        if let r = body.range(of: "probe-") {
            let id = body[r.lowerBound...].prefix { $0 != " " && $0 != "\"" }
            shared.arrivals.withLock { if $0[String(id)] == nil { $0[String(id)] = now } }
        }
        return .ok
    }
    let port = ChildProcess.freeLoopbackPort()
    var sinkLogger = logger
    sinkLogger.logLevel = .critical  // cancelling the sink at the end logs channel errors that mean nothing here
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: sinkLogger)
    let sinkTask = Task { try await app.runService() }
    defer { sinkTask.cancel() }
    let url = "http://127.0.0.1:\(port)/hook"
    let hook = WebhookNotifier(channel: "webhook", configuration: .init(url: url, secret: "bench-secret"))
    for _ in 0..<200 {
        if (try? await hook.send(Notification(id: "warmup", channel: "webhook", recipient: "", body: "warmup"))) != nil
        {
            break
        }
        try await Task.sleep(for: .milliseconds(20))
    }

    // Reference latency: direct POSTs.
    var direct: [Double] = []
    for i in 0..<probes {
        let t0 = monotonicSeconds()
        try await hook.send(Notification(id: "ref-\(i)", channel: "webhook", recipient: "", body: "reference \(i)"))
        direct.append(monotonicSeconds() - t0)
    }
    direct.sort()

    // The pipeline: journal + SQLite points + rule engine + router + SQLite outbox + dispatcher + webhook.
    let storage = try SQLiteStorage(configuration: .init(directory: base), logger: logger)
    let journal = try FileJournal(configuration: .init(directory: base + "/journal"), logger: logger)
    let registry = SQLiteRegistryStore(storage: storage)
    let points = SQLitePointStore(storage: storage)
    let outbox = SQLiteOutbox(storage: storage)
    let tenant: TenantID = "bench"
    let scope = AccessScope.tenant(tenant)
    try await registry.saveTenant(Tenant(id: tenant))
    try await registry.saveProduct(scope, Product(id: "sensor", signals: [Signal(name: "temp", type: .number)]))
    let loadDevices = 100
    for d in 0..<loadDevices { try await registry.saveDevice(scope, Device(uid: "load-\(d)", product: "sensor")) }
    for p in 0..<probes { try await registry.saveDevice(scope, Device(uid: "probe-\(p)", product: "sensor")) }
    var dc = NotificationDispatcher.Configuration()
    dc.defaultPolicy = .init(digestThreshold: 0)
    let dispatcher = NotificationDispatcher(
        configuration: dc, outbox: outbox, notifiers: [hook], clock: SystemClock(), tenants: { [tenant] },
        logger: logger)
    let notifications = NotificationRouter(
        outbox: outbox, registry: registry, clock: SystemClock(), logger: logger,
        enqueued: { t in Task { await dispatcher.wake(t) } })
    try await notifications.saveTemplate(
        try NotificationTemplate(id: "probe", kind: .alarmRaised, body: "${device_uid} raised"), tenant: tenant)
    try await notifications.savePolicy(
        RoutingPolicy(
            id: "bench", match: EventMatch(events: [.raised]), templates: ["raised": "probe"],
            targets: [RoutingTarget(channel: "webhook")]), tenant: tenant)
    let engine = RuleEngine(
        clock: SystemClock(), stateStore: SQLiteRuleStateStore(storage: storage), registry: registry, logger: logger)
    try await engine.add(
        .range(RangeRule(id: "hot", devices: .product("sensor"), signal: "temp", max: 80)), tenant: tenant)
    await engine.addHandler(notifications)
    let ingestor = Ingestor(
        journal: journal, pointStore: points, registry: registry, observers: [engine], logger: logger)
    let services = [
        Task { try await ingestor.run() }, Task { try await engine.run() }, Task { try await dispatcher.run() },
    ]
    defer { for s in services { s.cancel() } }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(2)) }

    // Background load, paced to loadRate msg/s by 4 submitters, until the probes are done.
    let loadStart = monotonicSeconds()
    let load = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<4 {
                group.addTask {
                    var n = 0
                    while !shared.stop.load(ordering: .relaxed) {
                        let due = loadStart + Double(n * 4 + lane) / Double(loadRate)
                        let wait = due - monotonicSeconds()
                        if wait > 0.001 { try await Task.sleep(for: .microseconds(Int(wait * 1_000_000))) }
                        let d = (n * 4 + lane) % loadDevices
                        let record = DeviceRecord(
                            deviceUID: "load-\(d)", values: ["temp": .number(20 + Double(n % 50) / 10)])
                        do {
                            _ = try await ingestor.ingest(
                                [record], transport: "bench",
                                identity: DeviceIdentity(tenant: tenant, deviceUID: "load-\(d)"))
                            shared.loadSent.add(1, ordering: .relaxed)
                        } catch let e as IoTError where e.code == .backpressure {}
                        n += 1
                    }
                }
            }
            try await group.waitForAll()
        }
    }
    try await Task.sleep(for: .milliseconds(500))
    var raisedAt: [String: Double] = [:]
    for p in 0..<probes {
        let uid = "probe-\(p)"
        raisedAt[uid] = monotonicSeconds()
        _ = try await ingestor.ingest(
            [DeviceRecord(deviceUID: uid, values: ["temp": .number(95)])], transport: "bench",
            identity: DeviceIdentity(tenant: tenant, deviceUID: uid))
        try await Task.sleep(for: .milliseconds(20))
    }
    let deadline = monotonicSeconds() + 30
    while shared.arrivals.withLock({ $0.count }) < probes + 0 && monotonicSeconds() < deadline {
        try await Task.sleep(for: .milliseconds(10))
    }
    shared.stop.store(true, ordering: .relaxed)
    _ = try? await load.value
    let achievedLoad = Double(shared.loadSent.load(ordering: .relaxed)) / (monotonicSeconds() - loadStart)
    let got = shared.arrivals.withLock { $0 }
    let latencies = raisedAt.compactMap { uid, t in got[uid].map { $0 - t } }.sorted()
    guard latencies.count == probes else {
        print("FAILED: \(latencies.count) of \(probes) alarm notifications arrived")
        exit(1)
    }
    let p99 = percentile(latencies, 0.99) * 1000
    let ref99 = percentile(direct, 0.99) * 1000
    print(
        String(
            format: "  alarm → webhook   p50 %6.2f ms   p99 %6.2f ms   (load %@ msg/s; goal p99 ≤ 50 ms: %@)",
            percentile(latencies, 0.5) * 1000, p99, grouped(achievedLoad), p99 <= 50 ? "met" : "MISSED"))
    print(
        String(
            format: "  reference: direct webhook POST   p50 %6.2f ms   p99 %6.2f ms   ratio p99 %.1f×",
            percentile(direct, 0.5) * 1000, ref99, p99 / max(ref99, 0.001)))

    // Throughput: the outbox through the dispatcher, 8 recipients.
    let t0 = monotonicSeconds()
    let createdAt = SystemClock().now()
    for i in 0..<throughputMessages {
        try await outbox.enqueue(
            scope,
            OutboxMessage(
                id: "tp-\(i)", channel: "webhook", recipient: "r\(i % 8)", body: "throughput \(i)", createdAt: createdAt
            ))
    }
    await dispatcher.wake(tenant)
    let enqueued = monotonicSeconds()
    while (try await outbox.messages(scope, status: .delivered, limit: throughputMessages + probes).count)
        < throughputMessages + probes,
        monotonicSeconds() - t0 < 120
    {
        try await Task.sleep(for: .milliseconds(20))
    }
    let sdkSeconds = monotonicSeconds() - t0
    let sdkRate = Double(throughputMessages) / sdkSeconds
    let r0 = monotonicSeconds()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for lane in 0..<8 {
            group.addTask {
                var i = lane
                while i < throughputMessages {
                    try await hook.send(
                        Notification(id: "d-\(i)", channel: "webhook", recipient: "", body: "direct \(i)"))
                    i += 8
                }
            }
        }
        try await group.waitForAll()
    }
    let directRate = Double(throughputMessages) / (monotonicSeconds() - r0)
    print(
        String(
            format: "  outbox → dispatcher → webhook   %@ notifications/s (enqueue %.2f s of %.2f s)",
            grouped(sdkRate), enqueued - t0, sdkSeconds))
    print(
        String(
            format: "  reference: 8 tasks posting directly   %@ notifications/s   ratio %.2f",
            grouped(directRate), sdkRate / directRate))
    for s in services { s.cancel() }
    sinkTask.cancel()
    removeTree(base)
}

/// What the sink, the load tasks and the benchmark share.
private final class NotifyShared: Sendable {
    let arrivals = Mutex<[String: Double]>([:])
    let stop = Atomic<Bool>(false)
    let loadSent = Atomic<Int>(0)
}
