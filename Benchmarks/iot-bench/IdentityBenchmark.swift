import Foundation
import IoTCore
import IoTServer
import IoTStorage
import IoTTesting
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 19's speed: what authorization adds to `GET …/latest` and `GET …/series` (a user's access token whose
/// data scope holds 10,000 devices over 1,000 departments, against the bootstrap admin key, which costs one
/// comparison and no scope), measured with `wrk` (keep-alive) in interleaved rounds on the same server and
/// SQLite stores; and how long resolving that user's scope takes (goal ≤ 1 ms p99): with the department tree in
/// memory (as between changes), and the first time after a change (the tree read from SQLite).
func runIdentityBenchmark(_ options: BenchOptions) async throws {
    let devices = options.smoke ? 1_000 : 10_000
    let departmentCount = options.smoke ? 100 : 1_000
    let seconds = options.smoke ? 1 : 4
    let rounds = options.smoke ? 1 : 3
    print(
        "== identity: a user whose scope holds \(grouped(Double(devices))) devices over \(grouped(Double(departmentCount))) departments"
    )
    let bench = try await BenchTenant("identity", options: options)
    defer { removeTree(bench.directory) }
    let (dir, logger, registry, tenant) = (bench.directory, bench.logger, bench.registry, bench.tenant)
    let points = SQLitePointStore(storage: bench.storage)
    let store = SQLiteIdentityStore(storage: bench.storage)
    let scope = AccessScope.tenant(tenant)
    // A tree of departments, ten below each: d-0 at the top.
    for i in 0..<departmentCount {
        try await store.saveDepartment(
            Department(id: "d-\(i)", name: nil, parent: i == 0 ? nil : "d-\((i - 1) / 10)"), tenant: tenant)
    }
    for i in 0..<devices {
        try await registry.saveDevice(
            scope, Device(uid: "dev-\(i)", product: "p", department: "d-\(i % departmentCount)"))
    }
    try await points.write(
        PointBatch(
            tenant: tenant,
            points: (0..<1_000).map {
                Point(device: "dev-0", signal: "temp", time: 1_700_000_000_000 + Int64($0) * 1_000, value: .number(20))
            }, journalSequence: 1))

    var configuration = IdentityService.Configuration()
    configuration.bcryptCost = 4
    let identity = IdentityService(
        configuration: configuration, keys: SigningKeys(), store: store, audit: nil, notifier: nil, registry: registry,
        logger: logger)
    let password = "a bench password 1"
    let user = try await identity.createUser(
        NewUser(username: "scoped", roles: [Role.viewer.id], department: "d-0", password: password), tenant: tenant,
        by: .adminKey)

    // The scope, resolved 2,000 times cold and 2,000 times with the department tree of the last second.
    let resolved = try await identity.resolveDataScope(of: user)
    guard resolved?.count == devices else {
        print("FAILED: the scope holds \(resolved?.count ?? -1) devices, not \(devices)")
        exit(1)
    }
    let samples = options.smoke ? 200 : 2_000
    var cold: [Double] = []
    var warm: [Double] = []
    for _ in 0..<samples {
        identity.forgetResolvedCredentials()
        let t = monotonicSeconds()
        _ = try await identity.resolveDataScope(of: user)
        cold.append((monotonicSeconds() - t) * 1_000)
        let u = monotonicSeconds()
        _ = try await identity.resolveDataScope(of: user)
        warm.append((monotonicSeconds() - u) * 1_000)
    }
    cold.sort()
    warm.sort()
    print(
        String(
            format:
                "scope resolution: p50 %.3f ms, p99 %.3f ms   (goal ≤ 1 ms p99; the department tree in memory, as between changes)",
            percentile(warm, 0.5), percentile(warm, 0.99)))
    print(
        String(
            format:
                "first resolution after a change (the %@ departments read from SQLite, once a minute at most): p50 %.3f ms, p99 %.3f ms",
            grouped(Double(departmentCount)), percentile(cold, 0.5), percentile(cold, 0.99)))

    guard shell("command -v wrk") != nil else {
        print("wrk is not installed (apt-get install wrk): the request overhead is not measured")
        return
    }
    let adminKey = String(repeating: "k", count: 32)
    let api = ManagementServer(
        configuration: .init(port: 0, adminAPIKey: adminKey), registry: registry, points: points,
        tokens: TokenAuthenticator(credentials: InMemoryCredentialStore()), ingestor: nil, prometheus: nil,
        identity: identity, logger: logger)
    let server = Task { try await api.run() }
    defer { server.cancel() }
    let port = try await api.listeningPort()
    let access = try await identity.login(username: "scoped", password: password, client: "bench").accessToken

    let base = "http://127.0.0.1:\(port)/api/v1/tenants/bench/devices/dev-0"
    let paths = [("latest", base + "/latest"), ("series", base + "/series/temp?limit=100")]
    for (name, url) in paths {
        var without: [Double] = []
        var with: [Double] = []
        for _ in 0..<rounds {
            without.append(try wrkRate(url, header: "X-API-Key: \(adminKey)", seconds: seconds, dir: dir))
            with.append(try wrkRate(url, header: "Authorization: Bearer \(access)", seconds: seconds, dir: dir))
        }
        let a = without.sorted()[without.count / 2]
        let b = with.sorted()[with.count / 2]
        print(
            String(
                format:
                    "GET …/%@: admin key %@ req/s, scoped user %@ req/s (medians of %d rounds of %d s): authorization adds %.1f %%   (goal ≤ 5 %%)",
                name, grouped(a), grouped(b), rounds, seconds, (a / b - 1) * 100))
    }
}

/// Requests/s of `wrk -t1 -c4` against `url` with `header`; fails on any answer but 200.
private func wrkRate(_ url: String, header: String, seconds: Int, dir: String) throws -> Double {
    guard let out = shell("wrk -t1 -c4 -d\(seconds)s -H '\(header)' '\(url)' 2>&1") else {
        throw BenchError("wrk failed against \(url)")
    }
    let lines = out.split(separator: "\n")
    if let line = lines.first(where: { $0.contains("Non-2xx") }) {
        throw BenchError("wrk got answers other than 200 from \(url): \(line)")
    }
    guard let line = lines.first(where: { $0.hasPrefix("Requests/sec:") }),
        let rate = Double(line.split(separator: " ").last ?? "")
    else { throw BenchError("cannot read wrk output:\n\(out)") }
    return rate
}
