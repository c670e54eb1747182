import Foundation
import Hummingbird
import IoTCore
import IoTProtocols
import IoTStorage
import Logging
import NIOCore
import Synchronization

/// Single-point HTTP ingest requests/s with keep-alive (`wrk`), side by side in the same run with a bare
/// Hummingbird route that answers "ok" to the same request; then batch ingest (100 points per request)
/// points/s. Server and `wrk` share this machine's cores.
func runHTTPBenchmark(_ options: BenchOptions) async throws {
    guard shell("command -v wrk") != nil else {
        print("== http: wrk is not installed (apt-get install wrk); skipped")
        return
    }
    let seconds = options.smoke ? 2 : 10
    let connections = 64
    let base = options.directory + "/http"
    removeTree(base)
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    print("== http: wrk -t2 -c\(connections) -d\(seconds)s, keep-alive")

    // Reference: a bare Hummingbird route.
    let helloRate: Double
    do {
        let router = Router()
        router.post("/hello") { _, _ in "ok" }
        let port = Mutex<Int?>(nil)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } }, logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
        let p = port.withLock { $0 }!
        helloRate = try wrk(
            url: "http://127.0.0.1:\(p)/hello", script: singlePointScript(), seconds: seconds, connections: connections,
            dir: base)
        task.cancel()
        _ = try? await task.value
    }
    print("hummingbird hello-world route:       \(grouped(helloRate)) req/s")

    // The SDK: real listener, token auth, JSON parser, ingestor, journal, SQLite store.
    let storage = try SQLiteStorage(configuration: .init(directory: base + "/sdk"), logger: logger)
    let journal = try FileJournal(configuration: .init(directory: base + "/sdk/journal"), logger: logger)
    let registry = SQLiteRegistryStore(storage: storage)
    let points = SQLitePointStore(storage: storage)
    let tokens = TokenAuthenticator(credentials: SQLiteCredentialStore(storage: storage))
    let tenant: TenantID = "bench"
    try await registry.saveTenant(Tenant(id: tenant))
    try await registry.saveProduct(.tenant(tenant), Product(id: "p", signals: [Signal(name: "temp")]))
    try await registry.saveDevice(.tenant(tenant), Device(uid: "dev", product: "p"))
    let token = try await tokens.issueToken(
        for: DeviceIdentity(tenant: tenant, deviceUID: "dev"), label: "bench", now: 0)
    let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry, logger: logger)
    // Token lookups cached for up to 1 s (iotd's default): revocation still takes effect within a second.
    let http = HTTPIngestTransport(
        configuration: .init(host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 20),
        gateway: DefaultIngestGateway(ingestor: ingestor, authenticator: tokens, logger: logger), logger: logger)
    let uncached = HTTPIngestTransport(
        configuration: .init(host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 20), ingestor: ingestor,
        authenticator: tokens, logger: logger)
    let services = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingestor.run() }
            group.addTask { try await http.run() }
            group.addTask { try await uncached.run() }
            try await group.next()
            group.cancelAll()
        }
    }
    let port = try await http.listeningPort()
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    let url = "http://127.0.0.1:\(port)/api/v1/\(token)/telemetry"
    let uncachedPort = try await uncached.listeningPort()
    let singleUncached = try wrk(
        url: "http://127.0.0.1:\(uncachedPort)/api/v1/\(token)/telemetry", script: singlePointScript(),
        seconds: seconds,
        connections: connections, dir: base)
    print("sdk single point, token looked up in SQLite per request: \(grouped(singleUncached)) req/s")
    let single = try wrk(url: url, script: singlePointScript(), seconds: seconds, connections: connections, dir: base)
    let afterSingle = ingestor.statistics
    print(
        "sdk single point, token cache 1 s (ThingsBoard form): \(grouped(single)) req/s   (stored \(afterSingle.stored), rejected \(afterSingle.rejected), dropped \(afterSingle.dropped))"
    )
    let batch = try wrkRun(
        url: url, script: batchScript(points: 100), seconds: seconds, connections: connections, dir: base)
    print(
        "sdk batch of 100 points: \(grouped(batch.all)) req/s answered, \(grouped(batch.accepted)) accepted (2xx) = \(grouped(batch.accepted * 100)) points/s stored; the rest got 503 + Retry-After"
    )
    print(
        String(
            format: "ratio sdk single (token cache) / hello-world: %.2f×   (goals: ≥ 0.5× and ≥ 30,000 req/s)",
            single / helloRate))
    print(String(format: "ratio sdk single (no token cache) / hello-world: %.2f×", singleUncached / helloRate))
    while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(5)) }
    // A request wrk abandoned at its deadline can still be between "received" and its outcome for a
    // moment: give the counters up to 2 s to settle; they must balance then.
    var s = ingestor.statistics
    for _ in 0..<400 where !s.isBalanced {
        try await Task.sleep(for: .milliseconds(5))
        s = ingestor.statistics
    }
    guard s.isBalanced, s.rejectedTotal == 0 else {
        print("FAILED: accounting \(s)")
        exit(1)
    }
    if s.droppedTotal > 0 {
        print("  note: \(s.droppedTotal) requests were answered 503 (back-pressure) and not stored: \(s.dropped)")
    }
    services.cancel()
    _ = try? await services.value
    removeTree(base)
}

/// Runs wrk and returns Requests/sec (all answers).
func wrk(url: String, script: String, seconds: Int, connections: Int, dir: String) throws -> Double {
    try wrkRun(url: url, script: script, seconds: seconds, connections: connections, dir: dir).all
}

/// Runs wrk; returns requests/s over all answers and over 2xx answers only.
private func wrkRun(url: String, script: String, seconds: Int, connections: Int, dir: String) throws -> (
    all: Double, accepted: Double
) {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let path = dir + "/script.lua"
    try script.write(toFile: path, atomically: false, encoding: .utf8)
    guard let out = shell("wrk -t2 -c\(connections) -d\(seconds)s --latency -s '\(path)' '\(url)' 2>&1") else {
        throw BenchError("wrk failed against \(url)")
    }
    let lines = out.split(separator: "\n")
    var rejected = 0.0
    if let line = lines.first(where: { $0.contains("Non-2xx") }) {
        print("  wrk: \(line.trimmingCharacters(in: .whitespaces))")
        rejected = Double(line.split(separator: " ").last ?? "") ?? 0
    }
    // "  44686 requests in 10.05s, 4.52MB read"
    guard let line = lines.first(where: { $0.hasPrefix("Requests/sec:") }),
        let rate = Double(line.split(separator: " ").last ?? ""),
        let total = lines.first(where: { $0.contains(" requests in ") }),
        let count = Double(total.split(separator: " ").first ?? ""),
        let elapsed = total.split(separator: " ").dropFirst(3).first.flatMap({ Double($0.dropLast(2)) })
    else { throw BenchError("cannot read wrk output:\n\(out)") }
    return (rate, (count - rejected) / elapsed)
}

/// One point per request, device time unique per request (thread id + counter), so no two requests
/// write the same (series, time).
func singlePointScript() -> String {
    """
    local counter = 0
    local threads = {}
    function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
    function init(args) counter = 0 end
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    function request()
      counter = counter + 1
      local ts = 1700000000000 + counter * 16 + tid
      return wrk.format(nil, nil, nil, '{"ts":' .. ts .. ',"temp":' .. (counter % 100) .. '.5}')
    end
    """
}

private func batchScript(points: Int) -> String {
    """
    local counter = 0
    local threads = {}
    function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    function request()
      counter = counter + 1
      local parts = {}
      for i = 1, \(points) do
        local ts = 1800000000000 + (counter * \(points) + i) * 16 + tid
        parts[i] = '{"ts":' .. ts .. ',"values":{"temp":' .. (i % 50) .. '}}'
      end
      return wrk.format(nil, nil, nil, '[' .. table.concat(parts, ',') .. ']')
    end
    """
}
