import Foundation
import IoTCore
import IoTProtocols
import IoTTesting
import Logging

/// Modbus TCP reads/s (10 holding registers per request, back-to-back on one connection) through
/// ``ModbusTransport``'s poll loop (the I/O thread's schedule with a device polled continuously: read,
/// decode into a record, hand it to the ingestor) beside the shared bench's raw C libmodbus client
/// (`bench_modbus.sh`'s `modbus_client`) against the same libmodbus server, alternating in the same run;
/// then N simulated devices (the test simulator, one TCP connection each) polled at 1 Hz, with the CPU
/// time the process spent.
func runModbusBenchmark(_ options: BenchOptions) async throws {
    guard let shared = sharedBenchDirectory() else {
        print("== modbus: ../shared/bench not found (set IOT_SHARED_BENCH); skipped")
        return
    }
    // Short alternating rounds: the machine's load changes over seconds and moves both figures.
    let seconds = options.smoke ? 1 : 2
    let rounds = options.smoke ? 1 : 7
    let bin = options.directory + "/modbus-bin"
    removeTree(bin)
    guard shell("make -s -C '\(shared)' BIN='\(bin)' '\(bin)/modbus_server' '\(bin)/modbus_client' 2>&1") != nil else {
        throw BenchError("building the shared bench's modbus_server/modbus_client failed (apt-get install libmodbus-dev gcc)")
    }
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    print("== modbus: FC3 read of 10 holding registers, back-to-back on one connection, same libmodbus server; \(rounds) alternating round(s) of \(seconds) s each")

    let port = freePort()
    let server = try ChildProcess(["\(bin)/modbus_server", String(port)])
    defer { server.stop(signal: SIGKILL) }
    try waitForTCP(port)

    let h = try await makeHarness(logger: logger)
    let modbus = try ModbusTransport(configuration: .init(ioThreads: 1), ingestor: h.ingestor, logger: logger)
    let run = Task { try await modbus.run() }
    var raws: [Double] = []
    var sdks: [Double] = []
    for round in 1...rounds {
        // Reference: the raw C libmodbus client (the server serves one connection at a time).
        guard let out = shell("'\(bin)/modbus_client' 127.0.0.1 \(port) \(seconds)"),
            let rate = out.split(separator: " ").first(where: { $0.hasPrefix("rate=") }).flatMap({ Double($0.dropFirst(5)) })
        else { throw BenchError("modbus_client failed") }
        raws.append(rate)

        // The SDK: one device polled continuously (interval 0) by its I/O thread's schedule.
        let device = ModbusDevice(
            identity: DeviceIdentity(tenant: "bench", deviceUID: "m\(round)"), connection: .tcp(host: "127.0.0.1", port: port),
            intervalMillis: 0, timeoutMillis: 500, startDelayMillis: 0,
            registers: (0..<10).map { ModbusRegister(signal: "r\($0)", address: $0) })
        try modbus.add(device)
        func successes() -> Int { modbus.device(device.identity)?.polling.successes ?? 0 }
        while successes() == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let n0 = successes()
        let cpu0 = processCPUSeconds()
        let t0 = monotonicSeconds()
        try await Task.sleep(for: .milliseconds(seconds * 1_000))
        let n1 = successes()
        let t1 = monotonicSeconds()
        let cpu = (processCPUSeconds() - cpu0) / (t1 - t0) * 100
        let failures = modbus.device(device.identity)?.polling.failures ?? 0
        await modbus.remove(device.identity)  // closes the connection for the next round's raw client
        let ours = Double(n1 - n0) / (t1 - t0)
        sdks.append(ours)
        print(
            "round \(round): raw libmodbus client (C) \(grouped(rate)) reads/s | sdk poll loop \(grouped(ours)) reads/s (failures \(failures)) | "
                + String(format: "%.2f× | sdk process CPU %.0f %% of one core (I/O thread + decode + ingest)", ours / rate, cpu))
    }
    let raw = median(raws)
    let ours = median(sdks)
    print("raw libmodbus client (C):                       \(grouped(raw)) reads/s (median)")
    print("sdk ModbusTransport poll loop (read+decode+ingest): \(grouped(ours)) reads/s (median)")
    print(String(format: "ratio sdk / raw libmodbus: %.2f×   (goal ≥ 0.9×)", ours / raw))
    // Each round's pair ran seconds apart, so its ratio is free of the drift between rounds.
    let paired = median(zip(sdks, raws).map { $0 / $1 })
    print(String(format: "median of the %d rounds' own ratios: %.2f×", rounds, paired))

    // For comparison: a read on demand from async code (two hops between the pool and the I/O thread).
    let device = ModbusDevice(
        identity: DeviceIdentity(tenant: "bench", deviceUID: "on-demand"), connection: .tcp(host: "127.0.0.1", port: port),
        intervalMillis: 3_600_000, timeoutMillis: 500, startDelayMillis: 3_600_000,
        registers: (0..<10).map { ModbusRegister(signal: "r\($0)", address: $0) })
    try modbus.add(device)
    _ = try await modbus.readNow(device.identity)
    var n = 0
    let t0 = monotonicSeconds()
    var t = t0
    while t - t0 < Double(min(seconds, 2)) {
        _ = try await modbus.readNow(device.identity)
        n += 1
        if n % 64 == 0 { t = monotonicSeconds() }
    }
    t = monotonicSeconds()
    print("sdk ModbusTransport.readNow (on demand, not the poll path): \(grouped(Double(n) / (t - t0))) reads/s")
    run.cancel()
    _ = try? await run.value
    let stats = h.ingestor.statistics
    print("ingest: \(stats.received) records received, \(stats.stored) stored, \(stats.rejectedTotal) rejected, \(stats.droppedTotal) dropped")

    try await pollMany(options, logger: logger, h: h)
    h.stop()
    removeTree(options.directory)
}

private func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// N devices, one TCP connection each, polled at 1 Hz through the ingestor (in-memory stores).
private func pollMany(_ options: BenchOptions, logger: Logger, h: BenchHarness) async throws {
    let devices = options.smoke ? 50 : 1_000
    let seconds = options.smoke ? 3 : 20
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    let source = "Tests/Support/peers/modbus_sim_server.c"
    guard access(source, R_OK) == 0 else {
        print("== modbus: \(source) not found (run from the package root); the \(devices)-device run is skipped")
        return
    }
    let sim = options.directory + "/modbus_sim_server"
    guard shell("cc -O2 -o '\(sim)' '\(source)' $(pkg-config --cflags --libs libmodbus) 2>&1") != nil else {
        throw BenchError("compiling \(source) failed")
    }
    let server = try ChildProcess([sim, "0"])
    defer { server.stop(signal: SIGKILL) }
    guard let line = server.readLine(), line.hasPrefix("ready "), let port = Int(line.dropFirst(6)) else {
        throw BenchError("modbus_sim_server did not start")
    }
    print("== modbus: \(devices) simulated devices (own TCP connection each), polled at 1 Hz for \(seconds) s, 4 I/O threads")
    let list = (0..<devices).map { i in
        ModbusDevice(
            identity: DeviceIdentity(tenant: "bench", deviceUID: "d\(i)"), connection: .tcp(host: "127.0.0.1", port: port),
            intervalMillis: 1_000, timeoutMillis: 500,
            registers: [
                ModbusRegister(signal: "temp", address: i % 1000, type: .int16, scale: 0.1),
                ModbusRegister(signal: "energy", area: .inputRegister, address: 100, type: .float32, byteOrder: .cdab),
            ])
    }
    let modbus = try ModbusTransport(configuration: .init(ioThreads: 4), devices: list, ingestor: h.ingestor, logger: logger)
    let run = Task { try await modbus.run() }
    try await Task.sleep(for: .seconds(2))  // staggered start spreads the first polls over one interval
    let before = modbus.devices().reduce(0) { $0 + $1.polling.successes }
    let cpu0 = processCPUSeconds()
    let t0 = monotonicSeconds()
    try await Task.sleep(for: .seconds(seconds))
    let cpu = processCPUSeconds() - cpu0
    let wall = monotonicSeconds() - t0
    let statuses = modbus.devices()
    let polls = statuses.reduce(0) { $0 + $1.polling.successes } - before
    let failures = statuses.reduce(0) { $0 + $1.polling.failures }
    print(
        "polls: \(grouped(Double(polls) / wall))/s (expected \(devices)/s), failures \(failures); CPU of this process (getrusage): "
            + String(format: "%.1f %% of one core (%.1f ms per poll, includes decode and ingest into in-memory stores)", cpu / wall * 100, cpu / Double(max(polls, 1)) * 1000))
    run.cancel()
    _ = try? await run.value
}

struct BenchHarness {
    let ingestor: Ingestor
    let task: Task<Void, any Error>
    func stop() { task.cancel() }
}

private func makeHarness(logger: Logger) async throws -> BenchHarness {
    let registry = InMemoryRegistryStore()
    try await registry.saveTenant(
        Tenant(id: "bench", policy: IngestPolicy(unknownDevices: .register(product: "p"), unknownSignals: .register)))
    try await registry.saveProduct(.tenant("bench"), Product(id: "p"))
    let ingestor = Ingestor(journal: InMemoryJournal(), pointStore: InMemoryPointStore(), registry: registry, logger: logger)
    let task = Task { try await ingestor.run() }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(2)) }
    return BenchHarness(ingestor: ingestor, task: task)
}

func freePort() -> Int { ChildProcess.freeLoopbackPort() }

func waitForTCP(_ port: Int) throws {
    for _ in 0..<200 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        close(fd)
        if rc == 0 { return }
        usleep(20_000)
    }
    throw BenchError("nothing listens on port \(port)")
}
