// The whole platform (IoTPlatform) with one layer replaced and one added:
// - replaced: the point store. `CSVMirrorStore` keeps points in a SQLite store of their own folder and appends
//   each one to a CSV file (for a data lake, say);
// - added: a transport for hardware of our own (`Heartbeat`, a PollingTransport) and a notification channel
//   (`ConsoleNotifier`, channel "console"), which the tenant's routing policy names.
// Everything else (HTTP ingest, the management API, rules, notifications, the journal) is built from the
// configuration, as iotd builds it. It runs for a few seconds, then checks that the heartbeat's points reached
// the CSV file and that its alarm reached the console, and exits 1 if not.
//
//   swift run CustomPlatformExample [--seconds N] [--dir PATH]
import Foundation
import IoTCore
import IoTPlatform
import IoTStorage
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

var seconds = 3
var directory = "/tmp/custom-platform-example-\(getpid())"
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    if a == "--seconds", let v = args.next().flatMap({ Int($0) }) { seconds = v }
    if a == "--dir", let v = args.next() { directory = v }
}

// MARK: Composition

let configuration = try PlatformConfiguration(
    yaml: """
        dataDirectory: \(directory)
        http: { port: 0 }
        management: { port: 0 }
        tenants:
          - id: lab
            products: [{ id: heart, signals: [{ name: beat }] }]
            devices: [{ uid: heart-1, product: heart }]
            rules:
              - { kind: range, id: racing, devices: { product: heart }, signal: beat, max: 2, alarmWhen: outside,
                  severity: major, debounce: { count: 1 }, hysteresis: 0 }
            notifications:
              policies: [{ id: to-console, match: { minSeverity: info }, targets: [{ channel: console }] }]
        """)
let logger = Logger(label: "custom-platform")
let points = try CSVMirrorStore(directory: directory + "/points", logger: logger)  // replaces the SQLite point store
let console = ConsoleNotifier(channel: "console")  // a channel beside inbox, email, webhooks, …
let heart = DeviceIdentity(tenant: "lab", deviceUID: "heart-1")
let layers = IoTPlatform.Layers(
    pointStore: points,
    transports: [{ gateway in Heartbeat(device: heart, gateway: gateway) }],
    notifiers: [console])
let platform = try IoTPlatform(configuration: configuration, layers: layers, logger: logger)
let group = ServiceGroup(services: [platform], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
Task {
    try await Task.sleep(for: .seconds(seconds))
    await group.triggerGracefulShutdown()
}
try await group.run()

// MARK: The check

let lines = (try? String(contentsOfFile: points.csvPath, encoding: .utf8))?.split(separator: "\n").count ?? 0
let alarms = console.received.withLock { $0 }
print("points mirrored to \(points.csvPath): \(lines); notifications on the console: \(alarms)")
guard lines >= 3, alarms >= 1 else {
    print("FAILED: expected at least 3 points in the CSV file and 1 notification")
    exit(1)
}
try? FileManager.default.removeItem(atPath: directory)

// MARK: The layers

/// Our own hardware: a heart that beats 1, 2, 3, … (a `PollingTransport` only says how to read it once).
final class Heartbeat: PollingTransport, @unchecked Sendable {
    private let beats = Mutex(0.0)

    /// Five beats a second.
    convenience init(device: DeviceIdentity, gateway: any IngestGateway) {
        self.init(
            name: "heartbeat", identity: device, configuration: .init(interval: .milliseconds(200)), gateway: gateway)
    }

    override func poll() async throws -> [DeviceRecord] {
        let beat = beats.withLock { n in
            n += 1
            return n
        }
        return [DeviceRecord(deviceUID: identity.deviceUID, time: clock.now(), values: ["beat": .number(beat)])]
    }
}

/// A notification channel that prints: what a pager, a chat room or a ticket system would get.
final class ConsoleNotifier: Notifier {
    let channel: String
    let received = Mutex(0)

    init(channel: String) { self.channel = channel }

    func send(_ notification: IoTCore.Notification) async throws {
        received.withLock { $0 += 1 }
        print("[\(channel)] \(notification.subject ?? "") — \(notification.body)")
    }
}

/// Points in a SQLite store of their own folder, each one also appended to `points.csv` there.
final class CSVMirrorStore: PointStore {
    let store: SQLitePointStore
    let csvPath: String
    private let file = Mutex<FileHandle?>(nil)

    init(directory: String, logger: Logger) throws {
        store = SQLitePointStore(storage: try SQLiteStorage(configuration: .init(directory: directory), logger: logger))
        csvPath = directory + "/points.csv"
        guard FileManager.default.createFile(atPath: csvPath, contents: nil) else {
            throw IoTError(.storage, "cannot create \(csvPath)")
        }
        file.withLock { $0 = FileHandle(forWritingAtPath: csvPath) }
    }

    func write(_ batch: PointBatch) async throws {
        try await store.write(batch)
        let rows = batch.points.map { "\(batch.tenant),\($0.device),\($0.signal),\($0.time),\($0.value)\n" }.joined()
        try file.withLock { handle in
            try handle?.seekToEnd()
            try handle?.write(contentsOf: Data(rows.utf8))
        }
    }

    func committedSequence(tenant: TenantID) async throws -> UInt64 {
        try await store.committedSequence(tenant: tenant)
    }

    func latest(_ scope: AccessScope, device: String, signals: [String]?) async throws -> [Point] {
        try await store.latest(scope, device: device, signals: signals)
    }

    func newestPointTimes(_ scope: AccessScope) async throws -> [String: Int64] {
        try await store.newestPointTimes(scope)
    }

    func range(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, limit: Int?, order: PointOrder
    ) async throws -> [Point] {
        try await store.range(scope, series: series, from: from, to: to, limit: limit, order: order)
    }

    func aggregate(
        _ scope: AccessScope, series: SeriesKey, from: Int64, to: Int64, bucketMillis: Int64?
    ) async throws -> [AggregateBucket] {
        try await store.aggregate(scope, series: series, from: from, to: to, bucketMillis: bucketMillis)
    }

    func deletePoints(_ scope: AccessScope, before time: Int64) async throws -> Int {
        try await store.deletePoints(scope, before: time)
    }
}
