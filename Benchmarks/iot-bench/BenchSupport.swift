import Foundation
import IoTCore
import IoTStorage
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh folder for one benchmark with SQLite storage in it, and in its registry the tenant `bench` with the
/// product `p` (one signal, `temp`); the caller removes the folder.
///
/// ```swift
/// let bench = try await BenchTenant("identity", options: options)
/// defer { removeTree(bench.directory) }
/// try await bench.registry.saveDevice(.tenant(bench.tenant), Device(uid: "dev-0", product: "p"))
/// ```
struct BenchTenant {
    /// `<options.directory>/<name>`, emptied first.
    let directory: String
    /// A logger that logs only critical messages, for the components under test.
    let logger: Logger
    /// The SQLite storage in `<directory>/data`.
    let storage: SQLiteStorage
    /// The registry on ``storage``.
    let registry: SQLiteRegistryStore
    /// `bench`.
    let tenant: TenantID = "bench"

    /// Empties and creates `<options.directory>/<name>`, opens the storage and saves the tenant and its product;
    /// removes the folder again when that fails.
    init(_ name: String, options: BenchOptions) async throws {
        directory = options.directory + "/" + name
        removeTree(directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        self.logger = logger
        do {
            storage = try SQLiteStorage(configuration: .init(directory: directory + "/data"))
            registry = SQLiteRegistryStore(storage: storage)
            try await registry.saveTenant(Tenant(id: tenant))
            try await registry.saveProduct(.tenant(tenant), Product(id: "p", signals: [Signal(name: "temp")]))
        } catch {
            removeTree(directory)
            throw error
        }
    }
}

/// Monotonic seconds.
func monotonicSeconds() -> Double { monotonicClockSeconds() }

/// Removes a directory tree.
func removeTree(_ path: String) {
    _ = system("rm -rf '\(path)'")
}

/// Runs a shell command and returns its standard output (nil when it failed).
func shell(_ command: String) -> String? {
    guard let f = popen(command, "r") else { return nil }
    var out = ""
    var buf = [CChar](repeating: 0, count: 4096)
    while fgets(&buf, Int32(buf.count), f) != nil {
        out += String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    return pclose(f) == 0 ? out : nil
}

/// The shared reference benchmarks (`../shared/bench`), when present.
func sharedBenchDirectory() -> String? {
    let candidates = [
        (getenv("IOT_SHARED_BENCH").map { String(cString: $0) }) ?? "",
        "../shared/bench", "../../shared/bench", "/work/shared/bench",
    ]
    for c in candidates where !c.isEmpty && access(c + "/Makefile", R_OK) == 0 { return c }
    return nil
}

/// Formats a number with thousands separators.
func grouped(_ v: Double) -> String {
    let n = Int(v.rounded())
    let s = String(n)
    var out = ""
    for (i, c) in s.reversed().enumerated() {
        if i > 0 && i % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return String(out.reversed())
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// CPU time of this whole process (all threads, user + system), in seconds, from `getrusage`.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU time (user + system, in seconds) of a running child process, from `/proc/PID/stat`; `nil` when it
/// cannot be read.
func processCPUSeconds(pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    // After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// CPU time (in seconds, from `/proc/self/task/*/schedstat`) of this process's threads whose name starts with
/// `prefix`, ended threads excluded.
func threadsCPUSeconds(namedWithPrefix prefix: String) -> Double {
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return 0 }
    var total = 0.0
    for tid in tasks {
        guard let comm = try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8),
            comm.hasPrefix(prefix),
            let sched = try? String(contentsOfFile: "/proc/self/task/\(tid)/schedstat", encoding: .utf8),
            let onCPU = sched.split(separator: " ").first.flatMap({ Double($0) })
        else { continue }
        total += onCPU / 1e9
    }
    return total
}

/// CPU time (user + system, in seconds) of this process's children that have ended and been waited for
/// (a `popen` command once `pclose` returned), from `getrusage`.
func childrenCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU time (seconds) that one thread has run, from its `schedstat` file (nanoseconds): a thread of this
/// process (`/proc/self/task/TID/schedstat`) or the main thread of a child (`/proc/PID/schedstat`).
func schedstatSeconds(_ path: String) -> Double? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8),
        let first = text.split(separator: " ").first, let ns = Double(first)
    else { return nil }
    return ns / 1e9
}

/// The `schedstat` path of this process's thread named `name` (as `pthread_setname_np` set it).
func threadSchedstatPath(named name: String) -> String? {
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
    for tid in tasks {
        let comm = (try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8)) ?? ""
        if comm.trimmingCharacters(in: .whitespacesAndNewlines) == name { return "/proc/self/task/\(tid)/schedstat" }
    }
    return nil
}

/// Runs blocking work (C calls, sockets, file copies) on a thread of its own, not the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in Thread { c.resume(with: Result { try body() }) }.start() }
}

/// Registers `devices` devices of `signals` signals, ingests `messages` messages of `signals` values (4
/// submitters; one message per device and second, time-major) and waits until all are committed: points/s, the
/// seconds to the last commit and the seconds to the last receipt. Checks every point was stored.
func pipelineRate(
    ingestor: Ingestor, registry: any RegistryStore, store: any PointStore, messages: Int, devices: Int, signals: Int
) async throws -> (rate: Double, seconds: Double, receipts: Double) {
    let tenant: TenantID = "bench"
    let scope = AccessScope.tenant(tenant)
    try await registry.saveTenant(Tenant(id: tenant))
    try await registry.saveProduct(
        scope, Product(id: "sensor", signals: (0..<signals).map { Signal(name: "s\($0)", type: .number) }))
    for d in 0..<devices { try await registry.saveDevice(scope, Device(uid: "dev\(d)", product: "sensor")) }
    let service = Task { try await ingestor.run() }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(2)) }
    let submitters = 4
    let t0 = monotonicSeconds()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for lane in 0..<submitters {
            group.addTask {
                var m = lane
                while m < messages {
                    let device = m % devices
                    var values: [String: SignalValue] = [:]
                    for s in 0..<signals { values["s\(s)"] = .number(20.0 + Double((m * signals + s) % 997) / 10.0) }
                    let record = DeviceRecord(
                        deviceUID: "dev\(device)", time: 1_700_000_000_000 + Int64(m / devices) * 1000, values: values)
                    do {
                        _ = try await ingestor.ingest(
                            [record], transport: "bench",
                            identity: DeviceIdentity(tenant: tenant, deviceUID: "dev\(device)"))
                        m += submitters
                    } catch let e as IoTError where e.code == .backpressure {
                        try await Task.sleep(for: .milliseconds(1))
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    let receipts = monotonicSeconds() - t0
    while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(1)) }
    let seconds = monotonicSeconds() - t0
    service.cancel()
    _ = try? await service.value
    let stats = ingestor.statistics
    guard stats.pointsStored == messages * signals, stats.isBalanced else {
        throw BenchError("stored \(stats.pointsStored) points, expected \(messages * signals); \(stats)")
    }
    let stored = try await store.aggregate(
        scope, series: SeriesKey(device: "dev0", signal: "s0"), from: 0, to: Int64.max / 2, bucketMillis: nil)
    guard stored.first?.count == (messages + devices - 1) / devices else {
        throw BenchError("dev0.s0 holds \(stored.first?.count ?? 0) points")
    }
    return (Double(messages * signals) / seconds, seconds, receipts)
}

/// The median of `values` (the mean of the middle two for an even count); 0 when there are none.
func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
