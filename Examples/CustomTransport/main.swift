// A device that is not one of ours: this machine itself, polled through /proc like a PLC over a fieldbus.
//
// `HostMonitor` subclasses IoTCore's `PollingTransport`: it only says how to read the device once; the
// base class owns the schedule, the timeout, backoff and handing the records to the real `Ingestor`, which
// journals them and commits them to the real SQLite store.
//
//   swift run CustomTransportExample [--seconds N] [--dir PATH]
import IoTCore
import IoTStorage
import Logging

#if canImport(Glibc)
    import Glibc
#endif

final class HostMonitor: PollingTransport, @unchecked Sendable {
    override func poll() async throws -> [DeviceRecord] {
        let load = try Self.read("/proc/loadavg").split(separator: " ")
        let meminfo = try Self.read("/proc/meminfo")
        func kib(_ key: String) -> Double? {
            meminfo.split(separator: "\n").first { $0.hasPrefix(key + ":") }
                .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Double($0) }
        }
        guard load.count >= 3, let l1 = Double(load[0]), let available = kib("MemAvailable") else {
            throw IoTError(.malformedPayload, "unexpected /proc format")
        }
        return [
            DeviceRecord(
                deviceUID: identity.deviceUID, time: clock.now(),
                values: ["load1": .number(l1), "memAvailableMiB": .number(available / 1024)])
        ]
    }

    static func read(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw IoTError(.unavailable, "cannot open \(path)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

var seconds = 3
var directory = "/tmp/custom-transport-example-\(getpid())"
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    if a == "--seconds", let v = args.next().flatMap({ Int($0) }) { seconds = v }
    if a == "--dir", let v = args.next() { directory = v }
}

let logger = Logger(label: "example")
let storage = try SQLiteStorage(configuration: .init(directory: directory), logger: logger)
let registry = SQLiteRegistryStore(storage: storage)
let points = SQLitePointStore(storage: storage)
let journal = try FileJournal(configuration: .init(directory: directory + "/journal"), logger: logger)
let host = DeviceIdentity(tenant: "lab", deviceUID: "this-host")
try await registry.saveTenant(Tenant(id: host.tenant))
try await registry.saveProduct(
    .tenant(host.tenant),
    Product(id: "linux-host", signals: [Signal(name: "load1"), Signal(name: "memAvailableMiB", unit: "MiB")]))
try await registry.saveDevice(.tenant(host.tenant), Device(uid: host.deviceUID, product: "linux-host"))

let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry, logger: logger)
let monitor = HostMonitor(
    name: "procfs", identity: host, configuration: .init(interval: .milliseconds(500), startDelay: .zero),
    ingestor: ingestor,
    logger: logger)

try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await ingestor.run() }
    group.addTask { try await monitor.run() }
    try await Task.sleep(for: .seconds(seconds))
    group.cancelAll()
}
let latest = try await points.latest(.tenant(host.tenant), device: host.deviceUID, signals: nil)
for p in latest { print("\(p.device).\(p.signal) = \(p.value) at \(p.time)") }
print(
    "polls: \(monitor.status.successes) ok, \(monitor.status.failures) failed; stored \(ingestor.statistics.pointsStored) points"
)
_ = system("rm -rf '\(directory)'")
exit(latest.count == 2 ? 0 : 1)
