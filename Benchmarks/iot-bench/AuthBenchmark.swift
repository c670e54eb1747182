import Foundation
import IoTCore
import IoTProtocols
import IoTServer
import IoTTesting
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 17's password-guessing attack: 200 wrong-password attempts per second from 50 client addresses
/// (127.0.0.10 … 127.0.0.59, each attempt a new connection, a new username each time so that every one costs
/// a PBKDF2 check until the limiter blocks its address), against the default password hashing (600,000
/// iterations, 2 hashing threads, 32 waiting). Printed side by side in the same run: the management
/// listener's `/healthz` p99 (goal ≤ 50 ms) and a valid device's request p99 (token, HTTP) with and without the
/// attack (goal ≤ 2×), and what the attempts got (401, 429 blocked, 503 hashing queue full).
func runAuthBenchmark(_ options: BenchOptions) async throws {
    let seconds = options.smoke ? 1.0 : 10.0
    var logger = Logger(label: "bench")
    logger.logLevel = .critical
    print(
        "== auth: 200 wrong-password attempts/s from 50 addresses; /healthz and a device's p99, \(Int(seconds)) s each side"
    )

    let registry = InMemoryRegistryStore()
    let points = InMemoryPointStore()
    let credentials = InMemoryCredentialStore()
    let auth = DeviceAuthService(credentials: credentials, logger: logger)
    let tenant: TenantID = "bench"
    try await registry.saveTenant(Tenant(id: tenant))
    try await registry.saveProduct(.tenant(tenant), Product(id: "p", signals: [Signal(name: "temp")]))
    try await registry.saveDevice(.tenant(tenant), Device(uid: "dev-0", product: "p"))
    let device = DeviceIdentity(tenant: tenant, deviceUID: "dev-0")
    let token = try await auth.issueToken(for: device, label: "bench", now: 0)
    _ = try await auth.addPassword(for: device, username: "dev-0", password: "the-right-password", label: "p", now: 0)
    let ingestor = Ingestor(journal: InMemoryJournal(), pointStore: points, registry: registry, logger: logger)
    let http = HTTPIngestTransport(
        configuration: .init(port: 0), ingestor: ingestor, authenticator: auth, logger: logger)
    let api = ManagementServer(
        configuration: .init(port: 0, adminAPIKey: String(repeating: "k", count: 32)), registry: registry,
        points: points, tokens: auth, ingestor: ingestor, prometheus: nil, logger: logger)
    let services = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingestor.run() }
            group.addTask { try await http.run() }
            group.addTask { try await api.run() }
            try await group.next()
            group.cancelAll()
        }
    }
    defer { services.cancel() }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    let httpPort = try await http.listeningPort()
    let apiPort = try await api.listeningPort()

    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    let sequence = Counter64()
    let telemetry: @Sendable () -> String = { [sequence, token] in
        let body = #"{"ts": \#(1_700_000_000_000 + sequence.next()), "temp": 1}"#
        return "POST /api/v1/devices/dev-0/telemetry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    /// Probes /healthz and the device every 20 ms for `seconds`; their latencies in ms.
    func probe() async throws -> (health: [Double], device: [Double]) {
        async let h = onThread { () -> [Double] in
            var out: [Double] = []
            let end = monotonicSeconds() + seconds
            while monotonicSeconds() < end {
                if let r = rawRequest(port: apiPort, health), r.status == 200 { out.append(r.millis) }
                usleep(20_000)
            }
            return out
        }
        async let d = onThread { () -> [Double] in
            var out: [Double] = []
            let end = monotonicSeconds() + seconds
            while monotonicSeconds() < end {
                if let r = rawRequest(port: httpPort, telemetry()), r.status == 200 { out.append(r.millis) }
                usleep(20_000)
            }
            return out
        }
        return (try await h, try await d)
    }

    let quiet = try await probe()
    let outcomes = Outcomes()
    let attempts = Counter64()
    // One pacing thread starts an attempt every 5 ms (200/s), each on a thread of its own, so a slow answer
    // never slows the attack down.
    Thread {
        let end = monotonicSeconds() + seconds
        var next = monotonicSeconds()
        while monotonicSeconds() < end {
            let n = attempts.next()
            Thread {
                let body = #"{"username":"guess-\#(n)","password":"wrong-\#(n)"}"#
                let request =
                    "POST /api/v1/devices/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                outcomes.count(rawRequest(port: httpPort, request, source: "127.0.0.\(10 + n % 50)")?.status ?? 0)
            }.start()
            next += 1.0 / 200
            let wait = next - monotonicSeconds()
            if wait > 0 { usleep(UInt32(wait * 1e6)) }
        }
    }.start()
    let attacked = try await probe()
    while outcomes.total < attempts.current {
        try await Task.sleep(for: .milliseconds(50))
    }

    let hq = percentile(quiet.health.sorted(), 0.99)
    let ha = percentile(attacked.health.sorted(), 0.99)
    let dq = percentile(quiet.device.sorted(), 0.99)
    let da = percentile(attacked.device.sorted(), 0.99)
    let counted = outcomes.snapshot
    print(String(format: "/healthz p99: %.1f ms without the attack, %.1f ms under it   (goal ≤ 50 ms)", hq, ha))
    print(
        String(
            format: "device request p99: %.1f ms without, %.1f ms under it: %.2f×   (goal ≤ 2×)", dq, da,
            da / max(dq, 0.001)))
    print(
        "attempts: \(attempts.current) in \(Int(seconds)) s; answered 401 \(counted[401] ?? 0), 429 \(counted[429] ?? 0) (address or username blocked), 503 \(counted[503] ?? 0) (hashing queue full), other \(counted.filter { ![401, 429, 503].contains($0.key) }.values.reduce(0, +)); probes \(quiet.health.count)+\(attacked.health.count) health, \(quiet.device.count)+\(attacked.device.count) device"
    )
    print(
        "limiter: \(auth.limiter.statistics.failures) failures counted, \(auth.limiter.statistics.blocked) attempts refused while blocked"
    )
}

/// A shared counter.
private final class Counter64: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.add(1, ordering: .relaxed).newValue }
    var current: Int { value.load(ordering: .relaxed) }
}

/// Answers by HTTP status.
private final class Outcomes: Sendable {
    private let counts = Mutex<[Int: Int]>([:])
    func count(_ status: Int) { counts.withLock { $0[status, default: 0] += 1 } }
    var total: Int { counts.withLock { $0.values.reduce(0, +) } }
    var snapshot: [Int: Int] { counts.withLock { $0 } }
}

/// One HTTP/1.1 request on a new connection to 127.0.0.1:`port` (from `source` when given): the status and
/// the milliseconds until the response was read, or `nil` when the connection failed.
private func rawRequest(port: Int, _ request: String, source: String? = nil) -> (status: Int, millis: Double)? {
    let start = monotonicSeconds()
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    if let source {
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        let rc = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { return nil }
    }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard rc == 0 else { return nil }
    let bytes = Array(request.utf8)
    guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
        return nil
    }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += buffer[0..<n]
        if response.count > 12, let text = String(bytes: response.prefix(64), encoding: .utf8),
            text.hasPrefix("HTTP/1.1 ")
        {
            // The status line is enough; read on until the server closes (Connection: close).
            continue
        }
    }
    let line = String(decoding: response.prefix(12), as: UTF8.self)
    guard line.hasPrefix("HTTP/1.1 "), let status = Int(line.dropFirst(9).prefix(3)) else { return nil }
    return (status, (monotonicSeconds() - start) * 1000)
}
