import Foundation
import IoTCore
import IoTProtocols
import IoTTesting
import Logging

/// Modbus TCP reads/s (10 holding registers, one request at a time) through ``ModbusTransport`` beside the
/// shared bench's raw C libmodbus client (`bench_modbus.sh`'s `modbus_client`) against the same libmodbus
/// server, in the same run; then N simulated devices (the test simulator, one TCP connection each)
/// polled at 1 Hz, with the CPU time the process spent.
func runModbusBenchmark(_ options: BenchOptions) async throws {
    guard let shared = sharedBenchDirectory() else {
        print("== modbus: ../shared/bench not found (set IOT_SHARED_BENCH); skipped")
        return
    }
    let seconds = options.smoke ? 1 : 5
    let bin = options.directory + "/modbus-bin"
    removeTree(bin)
    guard shell("make -s -C '\(shared)' BIN='\(bin)' '\(bin)/modbus_server' '\(bin)/modbus_client' 2>&1") != nil else {
        throw BenchError("building the shared bench's modbus_server/modbus_client failed (apt-get install libmodbus-dev gcc)")
    }
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    print("== modbus: read 10 holding registers, sequential, \(seconds) s per run")

    let port = freePort()
    let server = try ChildProcess(["\(bin)/modbus_server", String(port)])
    defer { server.stop(signal: SIGKILL) }
    try waitForTCP(port)

    // Reference: the raw C libmodbus client.
    guard let out = shell("'\(bin)/modbus_client' 127.0.0.1 \(port) \(seconds)"),
        let rate = out.split(separator: " ").first(where: { $0.hasPrefix("rate=") }).flatMap({ Double($0.dropFirst(5)) })
    else { throw BenchError("modbus_client failed") }
    print("raw libmodbus client (C):            \(grouped(rate)) reads/s")

    // The SDK: ModbusTransport.readNow (I/O thread hop, libmodbus read, decode into a record).
    let h = try await makeHarness(logger: logger)
    let device = ModbusDevice(
        identity: DeviceIdentity(tenant: "bench", deviceUID: "m"), connection: .tcp(host: "127.0.0.1", port: port),
        intervalMillis: 3_600_000, timeoutMillis: 500, startDelayMillis: 3_600_000,
        registers: (0..<10).map { ModbusRegister(signal: "r\($0)", address: $0) })
    let modbus = try ModbusTransport(configuration: .init(ioThreads: 1), devices: [device], ingestor: h.ingestor, logger: logger)
    let run = Task { try await modbus.run() }
    _ = try await modbus.readNow(device.identity)
    var n = 0
    let t0 = monotonicSeconds()
    var t = t0
    while t - t0 < Double(seconds) {
        _ = try await modbus.readNow(device.identity)
        n += 1
        if n % 64 == 0 { t = monotonicSeconds() }
    }
    t = monotonicSeconds()
    let ours = Double(n) / (t - t0)
    print("sdk ModbusTransport.readNow:        \(grouped(ours)) reads/s")
    print(String(format: "ratio sdk / raw libmodbus: %.2f×   (goal ≥ 0.9×)", ours / rate))
    run.cancel()
    _ = try? await run.value

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
    let cpu0 = modbusProcessCPUSeconds()
    let t0 = monotonicSeconds()
    try await Task.sleep(for: .seconds(seconds))
    let cpu = modbusProcessCPUSeconds() - cpu0
    let wall = monotonicSeconds() - t0
    let statuses = modbus.devices()
    let polls = statuses.reduce(0) { $0 + $1.polling.successes } - before
    let failures = statuses.reduce(0) { $0 + $1.polling.failures }
    print(
        "polls: \(grouped(Double(polls) / wall))/s (expected \(devices)/s), failures \(failures); CPU of this process: "
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

/// CPU time of the whole process (all threads), in seconds.
private func modbusProcessCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
