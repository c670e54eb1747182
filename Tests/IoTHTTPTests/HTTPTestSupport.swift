import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IoTCore
import IoTProtocols
import IoTStorage
import IoTTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing

@testable import IoTHTTP

/// An ingestor over in-memory stores and an HTTP ingest transport on a free loopback port.
final class HTTPHarness: Sendable {
    static let tenant: TenantID = "acme"
    let registry = InMemoryRegistryStore()
    let points: any PointStore
    let credentials = InMemoryCredentialStore()
    let journal = InMemoryJournal()
    let auth: TokenAuthenticator
    let ingestor: Ingestor
    let transport: HTTPIngestTransport
    let port: Int
    private let group: ServiceGroup
    private let groupTask: Task<Void, any Error>

    var scope: AccessScope { .tenant(Self.tenant) }

    init(
        configuration: HTTPIngestTransport.Configuration = .init(port: 0),
        ingestorConfiguration: Ingestor.Configuration = .init(),
        points: any PointStore = InMemoryPointStore(),
        startIngestor: Bool = true,
        rateLimitClock: (@Sendable () -> Int64)? = nil,
        authenticationCacheLifetime: Duration = .zero,
        authenticationCacheClock: (@Sendable () -> Int64)? = nil
    ) async throws {
        self.points = points
        try await registry.saveTenant(Tenant(id: Self.tenant))
        try await registry.saveProduct(
            .tenant(Self.tenant),
            Product(
                id: "thermo",
                signals: [Signal(name: "temp"), Signal(name: "on", type: .bool), Signal(name: "fw", type: .text)]))
        for uid in ["t-1", "t-2"] {
            try await registry.saveDevice(.tenant(Self.tenant), Device(uid: uid, product: "thermo"))
        }
        auth = TokenAuthenticator(credentials: credentials)
        let ingestor = Ingestor(
            configuration: ingestorConfiguration, journal: journal, pointStore: points, registry: registry,
            clock: ManualClock(now: 1_700_000_000_000), observers: [], parsers: nil, rateLimitClock: rateLimitClock,
            logger: Logger(label: "test"))
        self.ingestor = ingestor
        let gateway = DefaultIngestGateway(
            ingestor: ingestor, authenticator: auth,
            configuration: .init(authenticationCacheLifetime: authenticationCacheLifetime),
            cacheClock: authenticationCacheClock, logger: Logger(label: "test"))
        let transport = HTTPIngestTransport(
            configuration: configuration, gateway: gateway, logger: Logger(label: "test"))
        self.transport = transport
        // As iotd runs them: one ServiceGroup, stopped by graceful shutdown.
        let group = ServiceGroup(
            configuration: .init(
                services: startIngestor ? [ingestor, transport] : [transport], logger: Logger(label: "test")))
        self.group = group
        groupTask = Task { try await group.run() }
        if startIngestor {
            while !ingestor.isReady { try await Task.sleep(for: .milliseconds(1)) }
        }
        port = try await transport.listeningPort()
    }

    /// Issues a token for a device of the test tenant.
    func token(_ uid: String = "t-1") async throws -> String {
        try await auth.issueToken(for: DeviceIdentity(tenant: Self.tenant, deviceUID: uid), label: "test", now: 0)
    }

    /// A connected client; shut it down when done.
    func client() -> TestClient {
        let client = TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(20)))
        client.connect()
        return client
    }

    /// Runs `body` with a client, always shutting it down.
    func withClient<T>(_ body: (TestClient) async throws -> T) async throws -> T {
        let client = client()
        do {
            let value = try await body(client)
            try await client.shutdown()
            return value
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    func drain() async throws {
        while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(1)) }
    }

    func series(_ device: String, _ signal: String) async throws -> [Point] {
        try await points.range(
            scope, series: SeriesKey(device: device, signal: signal), from: 0, to: .max, limit: nil, order: .ascending)
    }

    /// Graceful shutdown: the listener closes, then the ingestor drains; both `run()`s return.
    func stop() async {
        await group.triggerGracefulShutdown()
        do {
            try await groupTask.value
        } catch {
            Issue.record("the services did not stop cleanly: \(error)")
        }
        await #expect(throws: (any Error).self) { try await self.transport.listeningPort() }
    }
}

extension TestClient {
    func post(_ uri: String, _ body: String, token: String? = nil, contentType: String? = "application/json")
        async throws -> TestClient.Response
    {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let contentType { headers[.contentType] = contentType }
        return try await post(uri, headers: headers, body: ByteBuffer(string: body))
    }
}

extension TestClient.Response {
    var text: String { body.map { String(buffer: $0) } ?? "" }

    /// The `error` field of a JSON error body.
    var errorCode: String? {
        guard let range = text.range(of: #""error":""#) else { return nil }
        let rest = text[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }
}
