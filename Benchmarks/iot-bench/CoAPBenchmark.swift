import Foundation
import IoTCore
import IoTProtocols
import IoTStorage
import IoTTestSupport
import IoTTesting
import Logging

/// CoAP ingest responses/s: the shared bench's C libcoap client (`bench_coap.sh`'s `coap_client`, NON POSTs of
/// `{"ts","temp","hum"}`, 16 requests in flight) against libcoap's own `coap-server-notls`, then the same client
/// against ``CoAPTransport`` (token in the path, JSON parser, ingestor, file journal, SQLite store; 2.04 only
/// on the journal receipt), in the same run.
func runCoAPBenchmark(_ options: BenchOptions) async throws {
    guard let shared = sharedBenchDirectory() else {
        print("== coap: ../shared/bench not found (set IOT_SHARED_BENCH); skipped")
        return
    }
    guard shell("command -v coap-server-notls") != nil else {
        print("== coap: coap-server-notls is not installed (apt-get install libcoap3-bin); skipped")
        return
    }
    let seconds = options.smoke ? 1 : 5
    let runs = options.smoke ? 1 : 3
    let window = 16
    let base = options.directory + "/coap"
    removeTree(base)
    let bin = base + "/bin"
    guard shell("make -s -C '\(shared)' BIN='\(bin)' '\(bin)/coap_client' 2>&1") != nil else {
        throw BenchError("building the shared bench's coap_client failed (apt-get install libcoap3-dev gcc make)")
    }
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    print("== coap: NON POST, \(window) in flight, \(seconds) s per run, median of \(runs)")

    func client(_ port: Int, _ path: String) throws -> (rate: Double, lost: Int) {
        guard let out = shell("'\(bin)/coap_client' 127.0.0.1 \(port) '\(path)' \(seconds) \(window)") else {
            throw BenchError("coap_client failed")
        }
        let fields = Dictionary(
            out.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { pair -> (String, String)? in
                let kv = pair.split(separator: "=", maxSplits: 1)
                return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
            }, uniquingKeysWith: { $1 })
        guard let rate = fields["rate"].flatMap(Double.init) else { throw BenchError("coap_client printed: \(out)") }
        return (rate, fields["lost"].flatMap { Int($0) } ?? 0)
    }

    // Reference: libcoap's example server (dynamic resources, -d), as in bench_coap.sh.
    let refPort = freePort()
    let server = try ChildProcess([
        "/usr/bin/env", "coap-server-notls", "-A", "127.0.0.1", "-p", String(refPort), "-d", "10", "-v", "0",
    ])
    defer { server.stop(signal: SIGKILL) }
    usleep(300_000)
    var reference: [Double] = []
    let referenceCPU0 = processCPUSeconds(pid: server.pid)
    for _ in 0..<runs { reference.append(try client(refPort, "telemetry").rate) }
    let referenceCPU = processCPUSeconds(pid: server.pid).flatMap { end in referenceCPU0.map { end - $0 } }
    server.stop(signal: SIGTERM)
    print("libcoap coap-server-notls (C):       \(grouped(median(reference))) resp/s")

    // The SDK.
    let storage = try SQLiteStorage(configuration: .init(directory: base + "/sdk"), logger: logger)
    let journal = try FileJournal(configuration: .init(directory: base + "/sdk/journal"), logger: logger)
    let registry = SQLiteRegistryStore(storage: storage)
    let points = SQLitePointStore(storage: storage)
    let tokens = TokenAuthenticator(credentials: SQLiteCredentialStore(storage: storage))
    let tenant: TenantID = "bench"
    try await registry.saveTenant(Tenant(id: tenant))
    try await registry.saveProduct(
        .tenant(tenant), Product(id: "p", signals: [Signal(name: "temp"), Signal(name: "hum")]))
    try await registry.saveDevice(.tenant(tenant), Device(uid: "dev", product: "p"))
    let token = try await tokens.issueToken(
        for: DeviceIdentity(tenant: tenant, deviceUID: "dev"), label: "bench", now: 0)
    let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry, logger: logger)
    let coap = CoAPTransport(
        configuration: .init(port: 0),
        gateway: DefaultIngestGateway(ingestor: ingestor, authenticator: tokens, logger: logger), logger: logger)
    let services = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingestor.run() }
            group.addTask { try await coap.run() }
            try await group.next()
            group.cancelAll()
        }
    }
    let port = try await coap.listeningPort()
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    var ours: [Double] = []
    var lost = 0
    let sdkCPU0 = processCPUSeconds()
    let received0 = ingestor.statistics.received
    for _ in 0..<runs {
        let r = try client(port, "api/v1/\(token)/telemetry")
        ours.append(r.rate)
        lost += r.lost
    }
    let sdk = median(ours)
    print(
        "sdk CoAPTransport (journal + SQLite): \(grouped(sdk)) resp/s\(lost > 0 ? "  (\(lost) requests unanswered within 1 s)" : "")"
    )
    print(String(format: "ratio sdk / coap-server: %.2f×   (goal ≥ 0.5×)", sdk / median(reference)))
    // CPU per answered request, which load on the machine disturbs far less than the rates: the C server's
    // from /proc, the SDK's from getrusage (this whole process: I/O thread, journal, SQLite commits).
    let answered = Double(ingestor.statistics.received - received0)
    let sdkMicros = (processCPUSeconds() - sdkCPU0) / max(1, answered) * 1e6
    let referenceAnswered = reference.reduce(0, +) * Double(seconds)
    if let referenceCPU, referenceAnswered > 0 {
        let referenceMicros = referenceCPU / referenceAnswered * 1e6
        print(
            String(
                format:
                    "CPU per request: coap-server %.1f µs, sdk %.1f µs (%.2f× the C server's; the SDK's includes its SQLite commits)",
                referenceMicros, sdkMicros, sdkMicros / referenceMicros))
    }
    // Every request ends in one counter; a request still being journaled when the client stopped settles.
    var s = ingestor.statistics
    for _ in 0..<400 where !s.isBalanced || s.inFlight > 0 {
        try await Task.sleep(for: .milliseconds(5))
        s = ingestor.statistics
    }
    services.cancel()
    _ = try? await services.value
    guard s.isBalanced, s.rejectedTotal == 0 else {
        throw BenchError("ingest counters do not balance or requests were rejected: \(s)")
    }
    print("ingest counters: received \(grouped(Double(s.received))), stored \(grouped(Double(s.stored))), rejected 0")

    // The same transport over in-memory stores: what the CoAP path costs without the file journal and SQLite.
    let memRegistry = InMemoryRegistryStore()
    try await memRegistry.saveTenant(Tenant(id: tenant))
    try await memRegistry.saveProduct(
        .tenant(tenant), Product(id: "p", signals: [Signal(name: "temp"), Signal(name: "hum")]))
    try await memRegistry.saveDevice(.tenant(tenant), Device(uid: "dev", product: "p"))
    let memTokens = TokenAuthenticator(credentials: InMemoryCredentialStore())
    let memToken = try await memTokens.issueToken(
        for: DeviceIdentity(tenant: tenant, deviceUID: "dev"), label: "bench", now: 0)
    let memIngestor = Ingestor(
        journal: InMemoryJournal(), pointStore: InMemoryPointStore(), registry: memRegistry, logger: logger)
    let memCoAP = CoAPTransport(
        configuration: .init(port: 0),
        gateway: DefaultIngestGateway(ingestor: memIngestor, authenticator: memTokens, logger: logger), logger: logger)
    let memServices = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await memIngestor.run() }
            group.addTask { try await memCoAP.run() }
            try await group.next()
            group.cancelAll()
        }
    }
    let memPort = try await memCoAP.listeningPort()
    while !memIngestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    var memRates: [Double] = []
    for _ in 0..<runs { memRates.append(try client(memPort, "api/v1/\(memToken)/telemetry").rate) }
    print(
        "sdk CoAPTransport (in-memory stores): \(grouped(median(memRates))) resp/s  (ratio \(String(format: "%.2f", median(memRates) / median(reference)))×)"
    )
    memServices.cancel()
    _ = try? await memServices.value
    removeTree(base)
}
