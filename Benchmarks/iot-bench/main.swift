// iot-bench: the SDK's benchmarks, each printed side by side with its reference measured in the same run.
//
//   swift run -c release iot-bench ingest [--points N] [--smoke]   journal + store vs raw SQLite insert
//   swift run -c release iot-bench query  [--points N] [--smoke]   1-h mean over 10M points vs raw query
//   swift run -c release iot-bench http   [--smoke]                wrk: single-point ingest vs hello-world route
//   swift run -c release iot-bench rules  [--smoke]                range-rule evaluations/s, joint-rule latency
//   swift run -c release iot-bench script [--points N] [--smoke]   Lua parse vs C lua_parse; JS with and without workers
//   swift run -c release iot-bench modbus [--smoke]                reads/s vs raw libmodbus; 1,000 devices at 1 Hz and their CPU
//   swift run -c release iot-bench mqtt   [--points N] [--smoke]   broker → MQTT transport → journal → store vs bare C sub and Python peer
//   swift run -c release iot-bench mqtt-drain [--points N]          the backlog drain of `mqtt` alone
//   swift run -c release iot-bench notify [--points N] [--smoke]   alarm → webhook p99 under 10k msg/s; outbox notifications/s
//   swift run -c release iot-bench stream [--smoke]                WebSocket and TCP messages/s with acks vs HTTP (wrk)
//   swift run -c release iot-bench coap   [--smoke]                CoAP ingest responses/s vs libcoap's coap-server (16 in flight)
//   swift run -c release iot-bench auth   [--smoke]                200 wrong-password attempts/s: /healthz and device p99 with and without
//   swift run -c release iot-bench identity [--smoke]              a scope of 10k devices resolved; latest/series with and without a user
//   swift run -c release iot-bench provision [--smoke]             10,000 devices with tokens in one bulk call vs one by one
//   swift run -c release iot-bench fleet [--points N] [--smoke]    10k devices over HTTP on iotd serve: RSS, CPU per message
//   swift run -c release iot-bench recovery [--points N] [--smoke] 10M points: shipped backup, restore, replay vs cp -a
//   swift run -c release iot-bench console [--points N] [--smoke]  the console's API calls with 10k devices: p95 vs /healthz
//   swift run -c release iot-bench postgres [--points N] [--smoke] PostgreSQL store vs raw COPY/INSERT; PG vs SQLite; Redis ops/message
//   swift run -c release iot-bench all    [--smoke]
//
// `--smoke` runs each with a small size, for CI: it proves the benchmark runs, not how fast.

struct BenchOptions {
    var command = "all"
    var smoke = false
    var points: Int?
    var directory: String = "/tmp/iot-bench-\(getpid())"
    /// Whether `--dir` named the directory (then it is not removed at the end).
    var directoryGiven = false

    init(_ args: [String]) {
        var it = args.makeIterator()
        if let first = it.next() { command = first }
        while let a = it.next() {
            switch a {
            case "--smoke": smoke = true
            case "--points": points = it.next().flatMap { Int($0) }
            case "--dir":
                if let d = it.next() {
                    directory = d
                    directoryGiven = true
                }
            default: print("unknown option \(a)")
            }
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif

let options = BenchOptions(Array(CommandLine.arguments.dropFirst()))

// The default working directory is this run's own (named after its pid): removed when the run ends, also
// after a failure, as the benchmarks remove only what they created inside it. A directory given with `--dir`
// is left alone.
func runSelected() async throws {
    defer { if !options.directoryGiven { removeTree(options.directory) } }
    switch options.command {
    case "ingest": try await runIngestBenchmark(options)
    case "query": try await runQueryBenchmark(options)
    case "http": try await runHTTPBenchmark(options)
    case "rules": try await runRulesBenchmark(options)
    case "script": try await runScriptBenchmark(options)
    case "modbus": try await runModbusBenchmark(options)
    case "mqtt": try await runMQTTBenchmark(options)
    case "mqtt-drain": try await runMQTTBenchmark(options, drainOnly: true)
    case "mqtt-path": try await runMQTTPathBenchmark(options)
    case "notify": try await runNotifyBenchmark(options)
    case "stream": try await runStreamBenchmark(options)
    case "coap": try await runCoAPBenchmark(options)
    case "auth": try await runAuthBenchmark(options)
    case "identity": try await runIdentityBenchmark(options)
    case "provision": try await runProvisionBenchmark(options)
    case "recovery": try await runRecoveryBenchmark(options)
    case "fleet": try await runFleetBenchmark(options)
    case "console": try await runConsoleBenchmark(options)
    case "postgres": try await runPostgresBenchmark(options)
    case "all":
        try await runIngestBenchmark(options)
        try await runQueryBenchmark(options)
        try await runRulesBenchmark(options)
        try await runScriptBenchmark(options)
        try await runNotifyBenchmark(options)
        try await runHTTPBenchmark(options)
        try await runModbusBenchmark(options)
        try await runMQTTBenchmark(options)
        try await runMQTTPathBenchmark(options)
        try await runStreamBenchmark(options)
        try await runCoAPBenchmark(options)
        try await runAuthBenchmark(options)
        try await runIdentityBenchmark(options)
        try await runProvisionBenchmark(options)
        try await runRecoveryBenchmark(options)
        try await runFleetBenchmark(options)
        try await runConsoleBenchmark(options)
        try await runPostgresBenchmark(options)
    default:
        print(
            "usage: iot-bench ingest|query|http|rules|script|modbus|mqtt|mqtt-drain|mqtt-path|notify|stream|coap|auth|identity|provision|recovery|fleet|console|postgres|all [--smoke] [--points N] [--dir PATH]"
        )
        exit(2)
    }
}

try await runSelected()
