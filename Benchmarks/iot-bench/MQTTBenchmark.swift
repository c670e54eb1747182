import Foundation
import IoTCore
import IoTProtocols
import IoTStorage
import IoTTestSupport
import Logging

/// Broker → MQTTTransport → JSON parse → journal → SQLite store, fed by `../shared/bench`'s C publisher
/// (`bin/mqtt_pub`, 200 000 messages over 1 000 topics, broker with `max_queued_messages 0`), side by side
/// in the same run with the bare C subscriber (`bench_mqtt.sh`) and the hand-written Python peer
/// (`bench_peer.sh`). Then the same load under the broker's default queue limit, counting lost messages.
///
/// `drainOnly` (`iot-bench mqtt-drain`) runs the backlog drain alone.
func runMQTTBenchmark(_ options: BenchOptions, drainOnly: Bool = false) async throws {
    guard let shared = sharedBenchDirectory() else {
        print("== mqtt: ../shared/bench not found (set IOT_SHARED_BENCH); skipped")
        return
    }
    guard access("/usr/sbin/mosquitto", X_OK) == 0 else {
        print("== mqtt: mosquitto is not installed (apt-get install mosquitto mosquitto-clients); skipped")
        return
    }
    let messages = options.points ?? (options.smoke ? 5_000 : 200_000)
    let topics = options.smoke ? 100 : 1_000
    let base = options.directory + "/mqtt"
    removeTree(base)
    let bin = base + "/bin"
    // The shared C tools are built into a scratch directory (the shared folder may be read-only).
    guard shell("make -s -C '\(shared)' BIN='\(bin)' '\(bin)/mqtt_pub' '\(bin)/mqtt_sub' 2>&1") != nil else {
        print("== mqtt: cannot build \(shared)'s mqtt_pub / mqtt_sub (needs gcc, libmosquitto-dev); skipped")
        return
    }
    print("== mqtt: \(grouped(Double(messages))) messages over \(topics) topics, broker max_queued_messages 0")

    var rows: [(qos: Int, sdk: Double, bare: Double?, python: Double?, lostDefault: Int, committedRate: Double)] = []
    for qos in drainOnly ? [] : [1, 0] {
        let env =
            "RUNS=1 MSGS=\(messages) TOPICS=\(topics) QOS_LIST=\(qos) BIN='\(bin)' BENCH_OUT='\(base)/ref' RESULTS='\(base)/ref/results'"
        let bare = reference(
            shell(
                "cd '\(shared)' && \(env) ./bench_mqtt.sh unlimited 2>&1 >/dev/null; cat '\(base)/ref/results/results.tsv'"
            ), "mqtt_unlimited_qos\(qos)_c_sub_first_to_last")
        let hasPaho = shell("python3 -c 'import paho.mqtt' 2>/dev/null") != nil
        let python =
            hasPaho
            ? reference(
                shell(
                    "cd '\(shared)' && \(env) ./bench_peer.sh unlimited 2>&1 >/dev/null; cat '\(base)/ref/results/results.tsv'"
                ), "peer_unlimited_qos\(qos)_first_to_last")
            : nil
        removeTree(base + "/ref")
        let sdk = try await measureSDK(
            qos: qos, messages: messages, topics: topics, bin: bin, dir: base + "/sdk-q\(qos)", unlimited: true)
        let lossy = try await measureSDK(
            qos: qos, messages: messages, topics: topics, bin: bin, dir: base + "/sdk-d\(qos)", unlimited: false)
        rows.append((qos, sdk.rate, bare, python, messages - lossy.received, sdk.committedRate))
        print(
            "QoS \(qos): sdk \(grouped(sdk.rate)) msg/s (first→last, journaled), \(grouped(sdk.committedRate)) msg/s until committed to SQLite"
                + " | bare C subscriber \(bare.map { grouped($0) } ?? "n/a") | Python peer \(python.map { grouped($0) } ?? "n/a (pip install paho-mqtt)")"
        )
        print(
            "QoS \(qos) with the broker's default queue limit (1 000): \(grouped(Double(messages - lossy.received))) of \(grouped(Double(messages))) lost before the SDK saw them"
        )
    }
    // Backlog drain (issue 20, item 11): the subscriber is not bound by the publisher. A persistent session is
    // registered, the backlog is queued while the subscriber is away, then it reconnects and drains it. The
    // references and the SDK take turns, round by round: on a shared machine the bare C subscriber's rate moves
    // by a factor of two between minutes, so each round's ratio compares runs made under the same conditions,
    // and the medians are the figures.
    let rounds = options.smoke ? 1 : 3
    var drainRounds: [(sdk: SDKRun, bare: Double?, python: Double?)] = []
    for round in 1...rounds {
        let drainEnv =
            "RUNS=1 MSGS=\(messages) TOPICS=\(topics) BIN='\(bin)' BENCH_OUT='\(base)/ref' RESULTS='\(base)/ref/results'"
        let drainTSV = shell(
            "cd '\(shared)' && \(drainEnv) ./bench_mqtt_drain.sh 2>&1 >/dev/null; cat '\(base)/ref/results/results.tsv'"
        )
        let bare = reference(drainTSV, "mqtt_drain_qos1_c_first_to_last")
        let python = reference(drainTSV, "mqtt_drain_qos1_py_first_to_last")
        removeTree(base + "/ref")
        let drain = try await measureSDKDrain(messages: messages, topics: topics, bin: bin, dir: base + "/sdk-drain")
        drainRounds.append((drain, bare, python))
        print(
            "drain QoS 1, round \(round) of \(rounds): sdk \(grouped(drain.rate)) msg/s (first→last, journaled), \(grouped(drain.committedRate)) msg/s until committed to SQLite, \(drain.received) of \(messages) received"
                + " | bare C subscriber \(bare.map { grouped($0) } ?? "n/a") | Python peer \(python.map { grouped($0) } ?? "n/a (pip install paho-mqtt)")"
                + " | \(bare.map { String(format: "%.2f", drain.rate / $0) } ?? "n/a")× C"
        )
        print(
            "drain QoS 1 CPU per message, round \(round): sdk process \(drain.cpuPerMessage.map { String(format: "%.1f µs", $0 * 1e6) } ?? "n/a") (MQTT loop, journal and SQLite commits), of which the MQTT loop thread \(drain.loopCPUPerMessage.map { String(format: "%.1f µs", $0 * 1e6) } ?? "n/a"), broker \(drain.brokerCPUPerMessage.map { String(format: "%.1f µs", $0 * 1e6) } ?? "n/a"); \(drain.messagesPerReadPass.map { String(format: "%.1f", $0) } ?? "n/a") messages per read pass"
        )
    }
    for r in rows {
        let goals = r.qos == 1 ? (0.8, 2.0) : (0.5, 3.0)
        let vsBare = r.bare.map { r.sdk / $0 }
        let vsPython = r.python.map { r.sdk / $0 }
        print(
            "mqtt QoS \(r.qos): \(vsBare.map { String(format: "%.2f", $0) } ?? "n/a")× bare C (goal ≥ \(goals.0)), \(vsPython.map { String(format: "%.2f", $0) } ?? "n/a")× Python peer (goal ≥ \(goals.1)); lost under the default queue limit: \(r.lostDefault)"
        )
    }
    let bareRatios = drainRounds.compactMap { r in r.bare.map { r.sdk.rate / $0 } }
    let pythonRatios = drainRounds.compactMap { r in r.python.map { r.sdk.rate / $0 } }
    let vsBare = bareRatios.isEmpty ? nil : median(bareRatios)
    let vsPython = pythonRatios.isEmpty ? nil : median(pythonRatios)
    print(
        "mqtt drain QoS 1 (\(rounds == 1 ? "1 round" : "median of \(rounds) rounds")): sdk \(grouped(median(drainRounds.map(\.sdk.rate)))) msg/s, \(vsBare.map { String(format: "%.2f", $0) } ?? "n/a")× bare C (goal ≥ 0.7), \(vsPython.map { String(format: "%.2f", $0) } ?? "n/a")× Python peer (goal ≥ 3)"
    )
    removeTree(base)
}

/// A broker on a free loopback port configured as the shared bench's lib.sh does, stopped by its PID.
private func startBroker(dir: String, extra: String) throws -> (Subprocess, Int) {
    let port =
        Int(
            shell("python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));print(s.getsockname()[1])'")?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 18_830
    try """
    per_listener_settings true
    listener \(port) 127.0.0.1
    allow_anonymous true
    persistence false
    log_dest none
    user root
    \(extra)
    """.write(toFile: dir + "/mosquitto.conf", atomically: true, encoding: .utf8)
    let broker = try Subprocess(["/usr/sbin/mosquitto", "-c", dir + "/mosquitto.conf"])
    do {
        try ChildProcess.waitForLoopbackPort(port, seconds: 4)
    } catch {
        broker.terminate()
        throw error
    }
    return (broker, port)
}

/// The platform's MQTT transport draining a backlog: its persistent session (fixed client id, clean session
/// off, QoS 1) is registered, `messages` are queued while it is away, then a new transport with the same id
/// connects and drains them through the journal into SQLite, as `bench_mqtt_drain.sh` measures its peers.
private func measureSDKDrain(messages: Int, topics: Int, bin: String, dir: String) async throws -> SDKRun {
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    removeTree(dir)
    _ = shell("mkdir -p '\(dir)'")
    let (broker, port) = try startBroker(dir: dir, extra: "max_queued_messages 0\nmax_queued_bytes 0")
    defer { broker.terminate() }
    let (ingestor, tenant) = try await benchIngestor(dir: dir, topics: topics, logger: logger)
    let ingest = Task { try await ingestor.run() }
    defer { ingest.cancel() }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    func transport() throws -> MQTTTransport {
        try MQTTTransport(
            configuration: .init(
                client: .init(host: "127.0.0.1", port: port, clientID: "iot-bench-drain", cleanSession: false),
                tenant: tenant, subscriptions: [try .init(template: "devices/{uid}/telemetry", qos: 1)]),
            ingestor: ingestor, logger: logger)
    }
    // Register the session, then leave.
    let first = try transport()
    first.startIngest()
    try await first.client.waitUntilReady()
    while first.client.status.subscriptions.first?.grantedQoS == nil { try await Task.sleep(for: .milliseconds(5)) }
    await first.stopIngest()
    // The backlog, queued for the absent session (the publisher blocks: it runs on a Dispatch thread).
    let published = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        _ = shell("'\(bin)/mqtt_pub' 127.0.0.1 \(port) 1 \(messages) \(topics)")
        published.signal()
    }
    while published.wait(timeout: .now()) == .timedOut { try await Task.sleep(for: .milliseconds(10)) }
    // Drain.
    let cpuBefore = processCPUSeconds()
    let brokerBefore = processCPUSeconds(pid: broker.pid)
    let mqtt = try transport()
    mqtt.startIngest()
    let (firstAt, lastAt) = try await receiveTimes(mqtt, messages: messages)
    // The client's own loop thread (its name starts with "mqtt-"), before it stops.
    let loopCPU = threadsCPUSeconds(namedWithPrefix: "mqtt-")
    while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(1)) }
    let committed = monotonicSeconds()
    let cpu = processCPUSeconds() - cpuBefore
    let brokerCPU = processCPUSeconds(pid: broker.pid).flatMap { a in brokerBefore.map { a - $0 } }
    await mqtt.stopIngest()
    let received = mqtt.client.status.messagesIn
    var run = SDKRun(
        rate: lastAt > firstAt ? Double(received - 1) / (lastAt - firstAt) : 0,
        committedRate: committed > firstAt ? Double(received) / (committed - firstAt) : 0, received: received)
    run.cpuPerMessage = received > 0 ? cpu / Double(received) : nil
    run.loopCPUPerMessage = received > 0 ? loopCPU / Double(received) : nil
    run.brokerCPUPerMessage = received > 0 ? brokerCPU.map { $0 / Double(received) } : nil
    let passes = mqtt.outcomes.readPasses
    run.messagesPerReadPass = passes > 0 ? Double(received) / Double(passes) : nil
    return run
}

/// An ingestor over SQLite stores and a file journal in `dir` (not running yet), with tenant `bench`, product `p`
/// (`temp`, `hum`, `ts`) and the devices `0` to `topics - 1` of the publisher's topics (others register as `p`).
func benchIngestor(dir: String, topics: Int, logger: Logger) async throws -> (Ingestor, TenantID) {
    let storage = try SQLiteStorage(configuration: .init(directory: dir), logger: logger)
    let journal = try FileJournal(configuration: .init(directory: dir + "/journal"), logger: logger)
    let registry = SQLiteRegistryStore(storage: storage)
    let tenant: TenantID = "bench"
    try await registry.saveTenant(Tenant(id: tenant, policy: IngestPolicy(unknownDevices: .register(product: "p"))))
    try await registry.saveProduct(
        .tenant(tenant), Product(id: "p", signals: [Signal(name: "temp"), Signal(name: "hum"), Signal(name: "ts")]))
    for i in 0..<topics { try await registry.saveDevice(.tenant(tenant), Device(uid: "\(i)", product: "p")) }
    let ingestor = Ingestor(
        journal: journal, pointStore: SQLitePointStore(storage: storage), registry: registry,
        logger: logger)
    return (ingestor, tenant)
}

/// When `mqtt` received its first and its last message: it has `messages`, or 5 s passed without one more.
private func receiveTimes(_ mqtt: MQTTTransport, messages: Int) async throws -> (first: Double, last: Double) {
    var first = 0.0
    var last = 0.0
    var lastCount = 0
    var idleSince = monotonicSeconds()
    while true {
        let n = mqtt.client.status.messagesIn
        let now = monotonicSeconds()
        if n > 0 && first == 0 { first = now }
        if n != lastCount {
            lastCount = n
            last = now
            idleSince = now
        }
        if n >= messages || now - idleSince > 5 { return (first, last) }
        try await Task.sleep(for: .microseconds(500))
    }
}

/// The median of `name` in a shared-bench results file.
private func reference(_ tsv: String?, _ name: String) -> Double? {
    guard let tsv else { return nil }
    for line in tsv.split(separator: "\n") {
        let f = line.split(separator: "\t")
        if f.count > 1, f[0] == name { return Double(f[1]) }
    }
    return nil
}

private struct SDKRun {
    var rate: Double
    var committedRate: Double
    var received: Int
    /// CPU seconds of this process per message, from the drain's start until it was committed (all threads).
    var cpuPerMessage: Double?
    /// CPU seconds of the MQTT loop thread per message (reading, parsing, journaling, acknowledging).
    var loopCPUPerMessage: Double?
    /// CPU seconds of the broker per message over the same span.
    var brokerCPUPerMessage: Double?
    /// Messages journaled together, at the end of one read pass of the loop thread: at most
    /// `MQTTClient.readBurst` (256), fewer when the socket runs dry before.
    var messagesPerReadPass: Double?
}

private func measureSDK(qos: Int, messages: Int, topics: Int, bin: String, dir: String, unlimited: Bool) async throws
    -> SDKRun
{
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    removeTree(dir)
    _ = shell("mkdir -p '\(dir)'")
    let (broker, port) = try startBroker(dir: dir, extra: unlimited ? "max_queued_messages 0" : "")
    defer { broker.terminate() }

    let (ingestor, tenant) = try await benchIngestor(dir: dir, topics: topics, logger: logger)
    let mqtt = try MQTTTransport(
        configuration: .init(
            client: .init(host: "127.0.0.1", port: port, clientID: "iot-bench-\(qos)"), tenant: tenant,
            subscriptions: [try .init(template: "devices/{uid}/telemetry", qos: qos)]),
        ingestor: ingestor, logger: logger)
    let ingest = Task { try await ingestor.run() }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    mqtt.startIngest()
    try await mqtt.client.waitUntilReady()

    // The publisher runs on a Dispatch thread, not on the cooperative pool the ingestor needs.
    let publisherDone = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        _ = shell("'\(bin)/mqtt_pub' 127.0.0.1 \(port) \(qos) \(messages) \(topics)")
        publisherDone.signal()
    }
    let (first, last) = try await receiveTimes(mqtt, messages: messages)
    while publisherDone.wait(timeout: .now()) == .timedOut { try await Task.sleep(for: .milliseconds(10)) }
    while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(1)) }
    let committed = monotonicSeconds()
    await mqtt.stopIngest()
    ingest.cancel()
    _ = try? await ingest.value
    let received = mqtt.client.status.messagesIn
    let stored = mqtt.outcomes.stored
    if stored != received {
        print("   (sdk: \(received) received, \(stored) stored, \(mqtt.outcomes.rejected) rejected)")
    }
    return SDKRun(
        rate: last > first ? Double(received - 1) / (last - first) : 0,
        committedRate: committed > first ? Double(received) / (committed - first) : 0, received: received)
}

/// A child process stopped by its PID.
final class Subprocess {
    let pid: pid_t
    init(_ arguments: [String]) throws {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        // No blocked signals in the child: a runtime worker thread blocks them, and mosquitto would then ignore SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let rc = posix_spawn(&pid, arguments[0], nil, &attributes, argv, environ)
        guard rc == 0 else { throw BenchFailure("cannot start \(arguments[0]): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }
    func terminate() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
