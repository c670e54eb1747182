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
import Testing

@testable import IoTHTTP

/// An ``IngestHarness`` (devices `t-1` and `t-2`) with a token authenticator and an HTTP ingest transport on a
/// free loopback port.
final class HTTPHarness: Sendable {
    static let tenant = IngestHarness.tenant
    let ingest: IngestHarness
    let credentials = InMemoryCredentialStore()
    let journal: InMemoryJournal
    let auth: TokenAuthenticator
    let transport: HTTPIngestTransport
    let port: Int

    var ingestor: Ingestor { ingest.ingestor }
    var points: any PointStore { ingest.points }

    init(
        configuration: HTTPIngestTransport.Configuration = .init(port: 0),
        ingestorConfiguration: Ingestor.Configuration = .init(),
        points: any PointStore = InMemoryPointStore(),
        startIngestor: Bool = true,
        rateLimitClock: (@Sendable () -> Int64)? = nil,
        authenticationCacheLifetime: Duration = .zero,
        authenticationCacheClock: (@Sendable () -> Int64)? = nil
    ) async throws {
        let journal = InMemoryJournal()
        self.journal = journal
        auth = TokenAuthenticator(credentials: credentials)
        ingest = try await IngestHarness(
            configuration: ingestorConfiguration, journal: journal, points: points, devices: ["t-1", "t-2"],
            rateLimitClock: rateLimitClock, authenticator: auth,
            gatewayConfiguration: .init(authenticationCacheLifetime: authenticationCacheLifetime),
            cacheClock: authenticationCacheClock, start: false)
        let transport = HTTPIngestTransport(
            configuration: configuration, gateway: ingest.gateway, logger: Logger(label: "test"))
        self.transport = transport
        // As iotd runs them: one ServiceGroup, stopped by graceful shutdown.
        try await ingest.start([transport], withIngestor: startIngestor)
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

    func drain() async throws { try await ingest.drain() }

    func series(_ device: String, _ signal: String) async throws -> [Point] { try await ingest.series(device, signal) }

    /// Graceful shutdown: the listener closes, then the ingestor drains; both `run()`s return.
    func stop() async {
        do {
            try await ingest.stopChecked()
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
