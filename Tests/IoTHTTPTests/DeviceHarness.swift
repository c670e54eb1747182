import Foundation
import IoTCore
import IoTProtocols
import IoTServer
import IoTTestSupport
import IoTTesting
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Every device listener (HTTP, WebSocket, TCP with both framings) and the management API, on free
/// loopback ports, over in-memory stores, with one ``DeviceAuthService`` and one ``DeviceSessions``.
final class DeviceHarness: Sendable {
    static let tenant = IngestHarness.tenant
    static let adminKey = "test-admin-key"
    let ingest: IngestHarness
    let credentials = InMemoryCredentialStore()
    let sessions = DeviceSessions()
    let live = LiveFeed()
    /// Wall time of token expiry (tests advance it).
    let authClock = ManualClock(now: 1_700_000_000_000)
    let auth: DeviceAuthService
    let http: HTTPIngestTransport
    let ws: WebSocketTransport
    let tcpLines: TCPTransport
    let tcpLength: TCPTransport
    let api: ManagementServer
    let httpPort: Int
    let wsPort: Int
    let tcpLinesPort: Int
    let tcpLengthPort: Int
    let apiPort: Int

    var ingestor: Ingestor { ingest.ingestor }

    init(
        webSocket: WebSocketTransport.Configuration = .init(port: 0, maxMessageBytes: 1_024),
        tcp: TCPTransport.Configuration = .init(port: 0, maxFrameBytes: 1_024),
        http: HTTPIngestTransport.Configuration = .init(port: 0),
        failedAttempts: FailedAttemptLimiter.Configuration = .init(),
        ingestorConfiguration: Ingestor.Configuration = .init(),
        managementTLS: ListenerTLS? = nil
    ) async throws {
        let logger = Logger(label: "test")
        auth = DeviceAuthService(
            credentials: credentials, sessions: sessions,
            configuration: .init(passwordIterations: 1_000, failedAttempts: failedAttempts), clock: authClock,
            logger: logger)
        // No authentication cache: a revoked credential is refused on its next message.
        ingest = try await IngestHarness(
            configuration: ingestorConfiguration, devices: ["t-1", "t-2", "t-3"], systemClock: true,
            observers: [live], authenticator: auth, gatewayConfiguration: .init(authenticationCacheLifetime: .zero),
            start: false)
        let gateway = ingest.gateway
        self.http = HTTPIngestTransport(configuration: http, gateway: gateway, tokenService: auth, logger: logger)
        ws = WebSocketTransport(configuration: webSocket, gateway: gateway, sessions: sessions, logger: logger)
        var lines = tcp
        lines.framing = .lines
        var length = tcp
        length.framing = .lengthPrefixed
        tcpLines = TCPTransport(configuration: lines, gateway: gateway, sessions: sessions, logger: logger)
        tcpLength = TCPTransport(configuration: length, gateway: gateway, sessions: sessions, logger: logger)
        api = ManagementServer(
            configuration: .init(port: 0, adminAPIKey: Self.adminKey, tls: managementTLS), registry: ingest.registry,
            points: ingest.points, tokens: auth,
            ingestor: ingest.ingestor, prometheus: nil,
            resources: [
                CredentialRoutes(manager: auth), DownlinkRoutes(sessions: sessions), LiveFeedRoutes(feed: live),
            ],
            logger: logger)
        try await ingest.start([self.http, ws, tcpLines, tcpLength, api])
        httpPort = try await self.http.listeningPort()
        wsPort = try await ws.listeningPort()
        tcpLinesPort = try await tcpLines.listeningPort()
        tcpLengthPort = try await tcpLength.listeningPort()
        apiPort = try await api.listeningPort()
    }

    func identity(_ uid: String) -> DeviceIdentity { DeviceIdentity(tenant: Self.tenant, deviceUID: uid) }

    /// A long-lived token for a device.
    func token(_ uid: String = "t-1") async throws -> String {
        try await auth.issueToken(for: identity(uid), label: "test-\(Int.random(in: 0..<1_000_000))", now: 0)
    }

    /// A password credential `<uid>-user` / returned password.
    func password(_ uid: String = "t-1", password: String = "secret-\(Int.random(in: 100_000..<999_999))") async throws
        -> IssuedPassword
    {
        try await auth.addPassword(
            for: identity(uid), username: "\(uid)-user", password: password, label: "primary", now: 0)
    }

    var wsURL: String { "ws://127.0.0.1:\(wsPort)/api/v1/devices/ws" }

    /// Starts the Python peer with `arguments` (see Peers/peer.py).
    func peer(_ arguments: [String]) throws -> Peer {
        Peer(try ChildProcess(["/usr/bin/env", "python3", "-u", Self.peerScript] + arguments))
    }

    static let peerScript: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast()
        return parts.joined(separator: "/") + "/Peers/peer.py"
    }()

    /// A management API request with the admin key (blocking I/O off the cooperative pool).
    func apiRequest(_ method: String, _ path: String, body: String = "") async throws -> LoopbackHTTPClient.Response {
        var headers = ["X-API-Key": Self.adminKey]
        if !body.isEmpty { headers["Content-Type"] = "application/json" }
        return try await Self.request(port: apiPort, method, path, headers: headers, body: body)
    }

    /// A device-listener HTTP request (blocking I/O off the cooperative pool).
    func httpRequest(_ method: String, _ path: String, headers: [String: String] = [:], body: String = "") async throws
        -> LoopbackHTTPClient.Response
    {
        var headers = headers
        if !body.isEmpty && headers["Content-Type"] == nil { headers["Content-Type"] = "application/json" }
        return try await Self.request(port: httpPort, method, path, headers: headers, body: body)
    }

    private static func request(port: Int, _ method: String, _ path: String, headers: [String: String], body: String)
        async throws -> LoopbackHTTPClient.Response
    {
        try await offPool {
            try LoopbackHTTPClient(port: port).request(method, path, headers: headers, body: Array(body.utf8))
        }
    }

    func series(_ device: String, _ signal: String = "temp") async throws -> [Point] {
        try await ingest.series(device, signal)
    }

    /// Waits until the ingestor has committed everything journaled.
    func drain() async throws { try await ingest.drain() }

    func rejected(_ reason: String) -> Int { ingestor.statistics.rejected[reason] ?? 0 }

    func stop() async {
        do {
            try await ingest.stopChecked()
        } catch {
            Issue.record("the services did not stop cleanly: \(error)")
        }
    }
}

/// Runs blocking work (a peer's pipe, a blocking HTTP client) on a thread of its own, so it never ties
/// up the cooperative pool that the listeners under test run on.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// A Python peer process; its event lines are read off the cooperative pool.
///
/// `@unchecked Sendable`: the child is used by one test at a time, one call after another.
final class Peer: @unchecked Sendable {
    let child: ChildProcess
    init(_ child: ChildProcess) { self.child = child }

    /// The next line, or `nil` at end of output.
    func readLine() async -> String? {
        (try? await offPool { self.child.readLine() }) ?? nil
    }

    /// The next line starting with `prefix` (skipping others), or `nil` at end of output.
    func next(_ prefix: String) async -> String? {
        while let line = await readLine() {
            if line.hasPrefix(prefix) { return line }
        }
        return nil
    }

    /// Every remaining line until the peer exits.
    func rest() async -> [String] {
        var lines: [String] = []
        while let line = await readLine() { lines.append(line) }
        return lines
    }

    /// Stops the peer by its PID.
    @discardableResult
    func stop(signal: Int32) -> Int32 { child.stop(signal: signal) }
}
