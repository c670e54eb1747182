import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Logging

/// Modbus TCP reads/s (10 holding registers per request, back-to-back on one connection) through
/// ``ModbusTransport``'s poll loop (the I/O thread's schedule with a device polled continuously: read,
/// decode into a record, hand it to the ingestor) beside the shared bench's raw C libmodbus client
/// (`bench_modbus.sh`'s `modbus_client`) against the same libmodbus server, in short paired rounds of
/// the same run, with the CPU each client and the server spend per read; then N simulated devices (the
/// test simulator, one TCP connection each) polled at 1 Hz, with the CPU time the process spent.
func runModbusBenchmark(_ options: BenchOptions) async throws {
    guard let shared = sharedBenchDirectory() else {
        print("== modbus: ../shared/bench not found (set IOT_SHARED_BENCH); skipped")
        return
    }
    // Short rounds, each a pair of the raw client and the SDK, the pair's order alternating: the rate of
    // a round trip on loopback moves by tens of percent over seconds on this VM (where the two peers land
    // on the vCPUs and how fast the host wakes them), so a pair's own ratio is the figure, and the
    // median over many pairs is the result.
    let seconds = options.smoke ? 0.5 : 1.0
    let rounds = options.smoke ? 2 : 15
    let bin = options.directory + "/modbus-bin"
    removeTree(bin)
    guard shell("make -s -C '\(shared)' BIN='\(bin)' '\(bin)/modbus_server' '\(bin)/modbus_client' 2>&1") != nil else {
        throw BenchError(
            "building the shared bench's modbus_server/modbus_client failed (apt-get install libmodbus-dev gcc)")
    }
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    print(
        "== modbus: FC3 read of 10 holding registers, back-to-back on one connection, same libmodbus server; \(rounds) rounds of "
            + String(format: "%.1f s for each side, the order alternating", seconds))

    let port = freePort()
    let server = try ChildProcess(["\(bin)/modbus_server", String(port)])
    defer { server.stop(signal: SIGKILL) }
    try ChildProcess.waitForLoopbackPort(port, seconds: 4)
    let serverCPU = "/proc/\(server.pid)/schedstat"

    let h = try await makeHarness(logger: logger)
    let modbus = try ModbusTransport(configuration: .init(ioThreads: 1), ingestor: h.ingestor, logger: logger)
    let run = Task { try await modbus.run() }
    // The thread names itself once it runs.
    var found = threadSchedstatPath(named: "iot-modbus-0")
    for _ in 0..<100 where found == nil {
        try await Task.sleep(for: .milliseconds(10))
        found = threadSchedstatPath(named: "iot-modbus-0")
    }
    guard let ioThreadCPU = found else {
        throw BenchError("the Modbus I/O thread iot-modbus-0 was not found in /proc/self/task")
    }

    /// One side of a round: reads/s, and CPU µs per read of the client (the C process, or the SDK's
    /// I/O thread) and of the server.
    struct Side {
        var rate: Double
        var clientCPU: Double
        var serverCPU: Double
    }
    func rawSide() throws -> Side {
        // The raw C libmodbus client (the server serves one connection at a time).
        let children0 = childrenCPUSeconds()
        let server0 = schedstatSeconds(serverCPU) ?? 0
        guard let out = shell("'\(bin)/modbus_client' 127.0.0.1 \(port) \(seconds)"),
            let requests = out.split(separator: " ").first(where: { $0.hasPrefix("requests=") }).flatMap({
                Double($0.dropFirst(9))
            }),
            let rate = out.split(separator: " ").first(where: { $0.hasPrefix("rate=") }).flatMap({
                Double($0.dropFirst(5))
            }),
            requests > 0
        else { throw BenchError("modbus_client failed") }
        let server1 = schedstatSeconds(serverCPU) ?? 0
        return Side(
            rate: rate, clientCPU: (childrenCPUSeconds() - children0) / requests * 1e6,
            serverCPU: (server1 - server0) / requests * 1e6)
    }
    func sdkSide(_ round: Int) async throws -> (Side, failures: Int) {
        // The SDK: one device polled continuously (interval 0) by its I/O thread's schedule.
        let device = ModbusDevice(
            identity: DeviceIdentity(tenant: "bench", deviceUID: "m\(round)"),
            connection: .tcp(host: "127.0.0.1", port: port),
            intervalMillis: 0, timeoutMillis: 500, startDelayMillis: 0,
            registers: (0..<10).map { ModbusRegister(signal: "r\($0)", address: $0) })
        try modbus.add(device)
        func successes() -> Int { modbus.device(device.identity)?.polling.successes ?? 0 }
        while successes() == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let n0 = successes()
        let thread0 = schedstatSeconds(ioThreadCPU) ?? 0
        let server0 = schedstatSeconds(serverCPU) ?? 0
        let t0 = monotonicSeconds()
        try await Task.sleep(for: .milliseconds(Int(seconds * 1_000)))
        let n1 = successes()
        let t1 = monotonicSeconds()
        let thread1 = schedstatSeconds(ioThreadCPU) ?? 0
        let server1 = schedstatSeconds(serverCPU) ?? 0
        let failures = modbus.device(device.identity)?.polling.failures ?? 0
        await modbus.remove(device.identity)  // closes the connection for the next raw client
        let reads = Double(max(n1 - n0, 1))
        return (
            Side(
                rate: reads / (t1 - t0), clientCPU: (thread1 - thread0) / reads * 1e6,
                serverCPU: (server1 - server0) / reads * 1e6), failures
        )
    }

    var raws: [Side] = []
    var sdks: [Side] = []
    for round in 1...rounds {
        let sdkFirst = round % 2 == 0
        var raw: Side
        let sdk: Side
        let failures: Int
        if sdkFirst {
            (sdk, failures) = try await sdkSide(round)
            raw = try rawSide()
        } else {
            raw = try rawSide()
            (sdk, failures) = try await sdkSide(round)
        }
        raws.append(raw)
        sdks.append(sdk)
        print(
            String(
                format:
                    "round %2d (%@ first): raw libmodbus client (C) %@ reads/s, %.1f µs CPU/read | sdk poll loop %@ reads/s, %.1f µs CPU/read on its I/O thread, failures %d | %.2f× | server %.1f / %.1f µs CPU/read",
                round, sdkFirst ? "sdk" : "raw", grouped(raw.rate), raw.clientCPU, grouped(sdk.rate), sdk.clientCPU,
                failures,
                sdk.rate / raw.rate, raw.serverCPU, sdk.serverCPU))
    }
    let raw = median(raws.map(\.rate))
    let ours = median(sdks.map(\.rate))
    print("raw libmodbus client (C):                           \(grouped(raw)) reads/s (median)")
    print("sdk ModbusTransport poll loop (read+decode+ingest): \(grouped(ours)) reads/s (median)")
    // Each round's pair ran within two seconds, so its ratio is free of the drift between rounds.
    let paired = median(zip(sdks, raws).map { $0.rate / $1.rate })
    print(
        String(
            format: "ratio sdk / raw libmodbus, median of the %d rounds' own ratios: %.2f×   (goal ≥ 0.9×)", rounds,
            paired))
    print(String(format: "ratio of the medians: %.2f×", ours / raw))
    let rawCPU = median(raws.map(\.clientCPU))
    let sdkCPU = median(sdks.map(\.clientCPU))
    print(
        String(
            format:
                "client CPU per read (median): raw C client %.1f µs (process, from getrusage) | sdk I/O thread %.1f µs (schedstat; the reads, the schedule and the hand-off: the ingest task decodes) | %+.1f µs",
            rawCPU, sdkCPU, sdkCPU - rawCPU))
    print(
        String(
            format: "server CPU per read (median): %.1f µs with the raw client | %.1f µs with the sdk",
            median(raws.map(\.serverCPU)),
            median(sdks.map(\.serverCPU))))

    // For comparison: a read on demand from async code (two hops between the pool and the I/O thread).
    let device = ModbusDevice(
        identity: DeviceIdentity(tenant: "bench", deviceUID: "on-demand"),
        connection: .tcp(host: "127.0.0.1", port: port),
        intervalMillis: 3_600_000, timeoutMillis: 500, startDelayMillis: 3_600_000,
        registers: (0..<10).map { ModbusRegister(signal: "r\($0)", address: $0) })
    try modbus.add(device)
    _ = try await modbus.readNow(device.identity)
    var n = 0
    let t0 = monotonicSeconds()
    var t = t0
    while t - t0 < seconds {
        _ = try await modbus.readNow(device.identity)
        n += 1
        if n % 64 == 0 { t = monotonicSeconds() }
    }
    t = monotonicSeconds()
    print("sdk ModbusTransport.readNow (on demand, not the poll path): \(grouped(Double(n) / (t - t0))) reads/s")
    run.cancel()
    _ = try? await run.value
    let stats = h.ingestor.statistics
    print(
        "ingest: \(stats.received) records received, \(stats.stored) stored, \(stats.rejectedTotal) rejected, \(stats.droppedTotal) dropped"
    )

    try await pollMany(options, logger: logger, h: h)
    h.stop()
    removeTree(options.directory)
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
    print(
        "== modbus: \(devices) simulated devices (own TCP connection each), polled at 1 Hz for \(seconds) s, 4 I/O threads"
    )
    let list = (0..<devices).map { i in
        ModbusDevice(
            identity: DeviceIdentity(tenant: "bench", deviceUID: "d\(i)"),
            connection: .tcp(host: "127.0.0.1", port: port),
            intervalMillis: 1_000, timeoutMillis: 500,
            registers: [
                ModbusRegister(signal: "temp", address: i % 1000, type: .int16, scale: 0.1),
                ModbusRegister(signal: "energy", area: .inputRegister, address: 100, type: .float32, byteOrder: .cdab),
            ])
    }
    let modbus = try ModbusTransport(
        configuration: .init(ioThreads: 4), devices: list, ingestor: h.ingestor, logger: logger)
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
            + String(
                format: "%.1f %% of one core (%.1f ms per poll, includes decode and ingest into in-memory stores)",
                cpu / wall * 100, cpu / Double(max(polls, 1)) * 1000))
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
    let ingestor = Ingestor(
        journal: InMemoryJournal(), pointStore: InMemoryPointStore(), registry: registry, logger: logger)
    let task = Task { try await ingestor.run() }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(2)) }
    return BenchHarness(ingestor: ingestor, task: task)
}

func freePort() -> Int { ChildProcess.freeLoopbackPort() }
