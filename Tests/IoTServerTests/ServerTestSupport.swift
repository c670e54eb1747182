import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTProtocols
import IoTRules
import IoTServer
import IoTStorage
import IoTTesting
import Logging
import NIOCore
import Prometheus
import Testing

/// A running ingestor, HTTP ingest transport and management server, over in-memory stores or SQLite
/// files in a temporary directory, in one `ServiceGroup` as iotd runs them.
final class ServerHarness: Sendable {
    static let key = "test-admin-key"
    /// The ingestor and its stores (nothing seeded: ``seed(_:)`` creates the tenant through the API).
    let ingest: IngestHarness
    let auth: TokenAuthenticator
    let directory: String?
    let prometheus = PrometheusCollectorRegistry()
    let server: ManagementServer
    let transport: HTTPIngestTransport
    let apiPort: Int
    let ingestPort: Int
    /// The rule engine and statistics scheduler's clock (the ingestor keeps the system clock).
    let clock = ManualClock()
    let ruleState = InMemoryRuleStateStore()
    let statisticsStore = InMemoryStatisticsStore()
    /// With `rules: true`: the engine (an observer of the ingestor) and the scheduler the API manages.
    let engine: RuleEngine?
    let scheduler: StatisticsScheduler?
    /// With `rules: true`: scheduled reports on ``clock``, enqueued in ``outbox``.
    let reports: ReportScheduler?
    let outbox = InMemoryOutbox()
    /// The devices' last activity (an observer of the ingestor) on ``clock``.
    let activity: DeviceActivity

    var registry: any RegistryStore { ingest.registry }
    var points: any PointStore { ingest.points }
    var ingestor: Ingestor { ingest.ingestor }

    init(
        adminAPIKey: String? = ServerHarness.key, startIngestor: Bool = true, maxExportPoints: Int = 1_000_000,
        sqlite: Bool = false, rules: Bool = false
    ) async throws {
        let journal: any Journal
        let registry: any RegistryStore
        let points: any PointStore
        if sqlite {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "iot-server-\(UUID().uuidString)"
            ).path
            let storage = try SQLiteStorage(configuration: .init(directory: directory), logger: Logger(label: "test"))
            self.directory = directory
            registry = SQLiteRegistryStore(storage: storage)
            points = SQLitePointStore(storage: storage)
            auth = TokenAuthenticator(credentials: SQLiteCredentialStore(storage: storage))
            journal = try FileJournal(
                configuration: .init(directory: directory + "/journal"), logger: Logger(label: "test"))
        } else {
            directory = nil
            registry = InMemoryRegistryStore()
            points = InMemoryPointStore()
            auth = TokenAuthenticator(credentials: InMemoryCredentialStore())
            journal = InMemoryJournal()
        }
        if rules {
            engine = RuleEngine(
                clock: clock, stateStore: ruleState, pointStore: points, registry: registry,
                logger: Logger(label: "test"))
            scheduler = StatisticsScheduler(
                clock: clock, pointStore: points, statisticsStore: statisticsStore, logger: Logger(label: "test"))
            reports = ReportScheduler(
                clock: clock, builder: ReportBuilder(points: points, registry: registry, alarms: ruleState),
                runs: InMemoryDefinitionStore(), outbox: outbox, logger: Logger(label: "test"))
        } else {
            engine = nil
            scheduler = nil
            reports = nil
        }
        activity = DeviceActivity(points: points, clock: clock)
        ingest = try await IngestHarness(
            journal: journal, points: points, registry: registry, seeded: false, systemClock: true,
            observers: (engine.map { [$0] } ?? []) + [activity], authenticator: auth,
            gatewayConfiguration: .init(authenticationCacheLifetime: .zero), start: false)
        var resources: [any ManagementRoutes] = [DashboardRoutes(definitions: InMemoryDefinitionStore())]
        if let engine, let scheduler, let reports {
            resources += [
                RuleRoutes(engine: engine), AlarmRoutes(engine: engine, state: ruleState),
                StatisticsRoutes(scheduler: scheduler, results: statisticsStore),
                ReportRoutes(scheduler: reports, definitions: nil),
            ]
        }
        server = ManagementServer(
            configuration: .init(port: 0, adminAPIKey: adminAPIKey, maxExportPoints: maxExportPoints),
            registry: registry, points: points,
            tokens: auth, ingestor: ingest.ingestor, prometheus: prometheus,
            resources: resources, activity: activity,
            logger: Logger(label: "test"))
        transport = HTTPIngestTransport(
            configuration: .init(port: 0), gateway: ingest.gateway, logger: Logger(label: "test"))
        try await ingest.start([transport, server], withIngestor: startIngestor)
        apiPort = try await server.listeningPort()
        ingestPort = try await transport.listeningPort()
    }

    /// Runs `body` with a client of the management API (which sends the admin key unless told not to).
    func api<T>(_ body: (APIClient) async throws -> T) async throws -> T {
        let client = TestClient(host: "127.0.0.1", port: apiPort, configuration: .init(timeout: .seconds(20)))
        client.connect()
        do {
            let value = try await body(APIClient(client: client))
            try await client.shutdown()
            return value
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Posts telemetry through the HTTP ingest listener (ThingsBoard form).
    func deviceSend(token: String, _ body: String) async throws -> HTTPResponse.Status {
        let client = TestClient(host: "127.0.0.1", port: ingestPort)
        client.connect()
        let r = try await client.post("/api/v1/\(token)/telemetry", headers: [:], body: ByteBuffer(string: body))
        try await client.shutdown()
        return r.status
    }

    func drain() async throws { try await ingest.drain() }

    /// Graceful shutdown of every service; removes the SQLite files.
    func stop() async {
        do {
            try await ingest.stopChecked()
        } catch {
            Issue.record("the services did not stop cleanly: \(error)")
        }
        await #expect(throws: (any Error).self) { try await self.server.listeningPort() }
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Creates tenant `acme`, product `thermo` (temp, on) and device `t-1`.
    func seed(_ c: APIClient) async throws {
        #expect(try await c.send(.post, "/api/v1/tenants", #"{"id": "acme", "name": "ACME"}"#).status == .created)
        #expect(
            try await c.send(
                .post, "/api/v1/tenants/acme/products",
                #"{"id": "thermo", "signals": [{"name": "temp", "unit": "°C"}, {"name": "on", "type": "bool"}]}"#
            )
            .status == .created)
        #expect(
            try await c.send(.post, "/api/v1/tenants/acme/devices", #"{"uid": "t-1", "product": "thermo"}"#).status
                == .created)
    }
}

struct APIClient {
    let client: TestClient

    func send(
        _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, key: String? = ServerHarness.key,
        keyHeader: HTTPField.Name = .authorization
    )
        async throws -> TestClient.Response
    {
        var headers: HTTPFields = [:]
        if let key { headers[keyHeader] = keyHeader == .authorization ? "Bearer \(key)" : key }
        if body != nil { headers[.contentType] = "application/json" }
        return try await client.execute(
            .init(uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }))
    }

    func get(_ uri: String) async throws -> TestClient.Response { try await send(.get, uri) }

    /// GET and parse a JSON body.
    func json(_ uri: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Any {
        let r = try await get(uri)
        #expect(r.status == .ok, "\(uri): \(r.text)", sourceLocation: sourceLocation)
        return try JSONSerialization.jsonObject(with: Data(r.text.utf8), options: [.fragmentsAllowed])
    }
}

extension TestClient.Response {
    var text: String { body.map { String(buffer: $0) } ?? "" }

    var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    var errorCode: String? { object["error"] as? String }
}
