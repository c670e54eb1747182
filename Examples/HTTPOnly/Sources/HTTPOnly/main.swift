// A device HTTP listener on the embedded default: SQLite stores, the file journal, token authentication and
// `HTTPIngestTransport`, run as services of one `ServiceGroup`, which SIGTERM or Ctrl-C shuts down in order
// (the listener first, then the ingestor, which commits what it acknowledged).
//
//   swift run --package-path Examples/HTTPOnly HTTPOnly [--port 8080 (0: any free port)] [--dir PATH]
//   curl -X POST http://127.0.0.1:8080/api/v1/<the printed token>/telemetry -d '{"temperature": 21.5}'
//
// On shutdown it prints the latest stored values and exits 0 if there are any.
import IoTCore
import IoTHTTP
import IoTStorage
import Logging
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

var port = 8080
var directory = "/tmp/http-only-example"
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    if a == "--port", let v = args.next().flatMap({ Int($0) }) { port = v }
    if a == "--dir", let v = args.next() { directory = v }
}

var logger = Logger(label: "http-only")
logger.logLevel = .notice
let storage = try SQLiteStorage(configuration: .init(directory: directory), logger: logger)
let registry = SQLiteRegistryStore(storage: storage)
let points = SQLitePointStore(storage: storage)
let journal = try FileJournal(configuration: .init(directory: directory + "/journal"), logger: logger)

// One tenant, one product, one device, and a token for it.
let device = DeviceIdentity(tenant: "lab", deviceUID: "sensor-1")
try await registry.saveTenant(Tenant(id: device.tenant))
try await registry.saveProduct(
    .tenant(device.tenant), Product(id: "sensor", signals: [Signal(name: "temperature", unit: "°C")]))
try await registry.saveDevice(.tenant(device.tenant), Device(uid: device.deviceUID, product: "sensor"))
let tokens = TokenAuthenticator(credentials: SQLiteCredentialStore(storage: storage))
let token = try await tokens.issueToken(for: device, label: "example", now: SystemClock().now())

let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry, logger: logger)
let http = HTTPIngestTransport(
    configuration: .init(host: "127.0.0.1", port: port), ingestor: ingestor, authenticator: tokens, logger: logger)
let services = ServiceGroup(
    configuration: .init(
        services: [.init(service: ingestor), .init(service: http)], gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
let announce = Task {
    let bound = try await http.listeningPort()  // the port chosen when --port is 0
    print("POST http://127.0.0.1:\(bound)/api/v1/\(token)/telemetry")
    fflush(nil)  // every stream: a pipe reader sees the line at once
}
try await services.run()
announce.cancel()

let latest = try await points.latest(.tenant(device.tenant), device: device.deviceUID, signals: nil)
for p in latest { print("\(p.device).\(p.signal) = \(p.value) at \(p.time)") }
print("stored \(ingestor.statistics.pointsStored) points")
exit(latest.isEmpty ? 1 : 0)
