// iot-crash-worker: a child process for the crash tests. It ingests sequence-numbered records through
// the real journal, ingestor and SQLite stores, and prints "R <n>" on stdout for every record whose
// Receipt it got. The test kills it with SIGKILL at random moments, restarts it, and checks that every
// reported record is stored exactly once.
//
//   iot-crash-worker DATA_DIR process|fsync FIRST COUNT
//
// Records FIRST..<FIRST+COUNT: three tasks send device-timed records for devices d0…d2 (time = base + n);
// a fourth sends records without device time for device "t" (server time stamped before journaling,
// one per millisecond), so a replay that re-stamped time would show up as a duplicate.
// With COUNT 0 it only replays the journal, drains, and exits 0.
import IoTCore
import IoTStorage
import Logging

#if canImport(Glibc)
    import Glibc
#endif

let args = CommandLine.arguments
guard args.count == 5, let first = Int(args[3]), let count = Int(args[4]) else {
    emit(2, "usage: iot-crash-worker DATA_DIR process|fsync FIRST COUNT\n")
    exit(2)
}
let directory = args[1]
let durability: FileJournal.Durability = args[2] == "fsync" ? .fsync : .process
var logger = Logger(label: "crash-worker")
logger.logLevel = .warning

let storage = try SQLiteStorage(configuration: .init(directory: directory), logger: logger)
let journal = try FileJournal(
    configuration: .init(directory: directory + "/journal", durability: durability), logger: logger)
let registry = SQLiteRegistryStore(storage: storage)
let points = SQLitePointStore(storage: storage)
let tenant: TenantID = "crash"
let scope = AccessScope.tenant(tenant)
if try await registry.tenant(tenant) == nil {
    try await registry.saveTenant(
        Tenant(id: tenant, policy: IngestPolicy(unknownDevices: .register(product: "counter"))))
    try await registry.saveProduct(scope, Product(id: "counter", signals: [Signal(name: "seq", type: .number)]))
}
let ingestor = Ingestor(
    configuration: .init(maxBatchPoints: 500), journal: journal, pointStore: points, registry: registry, logger: logger)
let clock = SystemClock()

func emit(_ fd: Int32, _ text: String) {
    let line = Array(text.utf8)
    _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

func report(_ n: Int) { emit(1, "R \(n)\n") }

try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await ingestor.run() }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    try await withThrowingTaskGroup(of: Void.self) { senders in
        for lane in 0..<4 {
            senders.addTask {
                var n = first + lane
                while n < first + count {
                    let timed = lane < 3
                    let record = DeviceRecord(
                        deviceUID: timed ? "d\(lane)" : "t", time: timed ? 1_700_000_000_000 + Int64(n) : nil,
                        values: ["seq": .number(Double(n))])
                    if !timed {
                        let now = clock.now()
                        while clock.now() == now { try await Task.sleep(for: .microseconds(200)) }
                    }
                    do {
                        _ = try await ingestor.ingest(
                            [record], transport: "crash",
                            identity: DeviceIdentity(tenant: tenant, deviceUID: record.deviceUID))
                        report(n)
                        n += 4
                    } catch let error as IoTError where error.code == .backpressure {
                        try await Task.sleep(for: .milliseconds(2))
                    }
                }
            }
        }
        try await senders.waitForAll()
    }
    // Drain: wait until everything journaled is committed, then stop.
    while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(5)) }
    group.cancelAll()
}
let stats = ingestor.statistics
emit(2, "worker done: received \(stats.received) stored \(stats.stored) balanced \(stats.isBalanced)\n")
exit(stats.isBalanced ? 0 : 1)
