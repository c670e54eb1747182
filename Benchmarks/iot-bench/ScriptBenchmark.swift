import Foundation
import IoTCore
import IoTScripting

#if canImport(Glibc)
    import Glibc
#endif

// The script benchmark: `shared/bench/src/parse.lua`'s logic (two `string.match`es on a JSON-ish payload)
// through `LuaScriptParser`, side by side with the C harness `lua_parse` (one lua_State, fields read back
// in C) in the same run; the same script unchanged through `LuaEngine`'s generic call; and the same logic
// in JavaScript through `JavaScriptParser`, once with the worker-process isolation and once in process.

/// parse.lua's body, taking `msg` and returning the same flat table (the message device's values).
private let luaParser = """
    function parse(msg)
      local payload = msg.payload
      local temp = tonumber(string.match(payload, '"temp":(-?[%d%.]+)'))
      local hum = tonumber(string.match(payload, '"hum":(-?[%d%.]+)'))
      return { temp = temp, hum = hum }
    end
    """

/// The same, returning the full record form (one more table per call).
private let luaRecordParser = """
    function parse(msg)
      local payload = msg.payload
      local temp = tonumber(string.match(payload, '"temp":(-?[%d%.]+)'))
      local hum = tonumber(string.match(payload, '"hum":(-?[%d%.]+)'))
      return { values = { temp = temp, hum = hum } }
    end
    """

private let jsParser = """
    function parse(msg) {
      var p = msg.payload;
      var temp = parseFloat(p.match(/"temp":(-?[\\d.]+)/)[1]);
      var hum = parseFloat(p.match(/"hum":(-?[\\d.]+)/)[1]);
      return [{ values: { temp: temp, hum: hum } }];
    }
    """

private let pythonParser = """
    import re
    TEMP = re.compile(r'"temp":(-?[\\d.]+)')
    HUM = re.compile(r'"hum":(-?[\\d.]+)')

    def parse(msg):
        p = msg["payload"]
        return [{"values": {"temp": float(TEMP.search(p).group(1)), "hum": float(HUM.search(p).group(1))}}]
    """

/// The C harness's 1024 payloads.
private func payloads() -> [String] {
    (0..<1024).map { i in
        let temp = 20.0 + Double(i % 100) / 10.0
        let hum = 40.0 + Double(i % 50) / 10.0
        return "{\"ts\":\(1_700_000_000_000 + i),\"temp\":\(oneDecimal(temp)),\"hum\":\(oneDecimal(hum))}"
    }
}

private func oneDecimal(_ v: Double) -> String {
    let tenths = Int((v * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

/// Parses `calls` messages, returning calls/s (wall clock and per CPU second of the calling thread), the
/// checksum of temp + hum, and the calls that timed out (on a loaded machine a worker can miss the
/// 100 ms limit; the engine then kills and replaces it).
private func measure(_ parser: any Parser, _ messages: [InboundMessage], calls: Int) throws
    -> (rate: Double, cpuRate: Double, checksum: Double, timeouts: Int)
{
    var sum = 0.0
    var timeouts = 0
    let cpu = threadCPUSeconds()
    let start = monotonicSeconds()
    for i in 0..<calls {
        let message = messages[i % messages.count]
        switch Result(catching: { () throws(IoTError) in try parser.parse(message) }) {
        case .success(let records):
            for r in records {
                sum += (r.values["temp"]?.numericValue ?? .nan) + (r.values["hum"]?.numericValue ?? .nan)
            }
        case .failure(let error) where error.code == .timeout: timeouts += 1
        case .failure(let error): throw error
        }
    }
    let wall = monotonicSeconds() - start
    return (Double(calls) / wall, Double(calls) / (threadCPUSeconds() - cpu), sum, timeouts)
}

func runScriptBenchmark(_ options: BenchOptions) async throws {
    let luaCalls = options.points ?? (options.smoke ? 20_000 : 1_000_000)
    let jsCalls = options.smoke ? 1_000 : 100_000
    let messages = payloads().map { InboundMessage(transport: "bench", deviceUID: "d-1", text: $0) }
    print("== script: Lua parse ×\(grouped(Double(luaCalls))), JavaScript parse ×\(grouped(Double(jsCalls))), 1 caller")

    // C reference first, so the SDK's run does not slow it down.
    var cRate: Double?
    var cCPURate: Double?
    if let shared = sharedBenchDirectory() {
        let bin = options.directory + "/ref-bin"
        let cpu0 =
            shell("make -s -C '\(shared)' BIN='\(bin)' '\(bin)/lua_parse' 2>&1") != nil ? childrenCPUSeconds() : nil
        if let cpu0, let out = shell("\(bin)/lua_parse '\(shared)/src/parse.lua' \(luaCalls)") {
            cRate = out.split(separator: " ").first { $0.hasPrefix("rate=") }.flatMap { Double($0.dropFirst(5)) }
            cCPURate = Double(luaCalls) / (childrenCPUSeconds() - cpu0)
            print(
                "C     lua_parse (shared/bench, 1 lua_State):            \(grouped(cRate ?? 0)) calls/s, \(grouped(cCPURate ?? 0)) per CPU-s   [\(out.trimmingCharacters())]"
            )
        } else {
            print("C     lua_parse: could not build or run the shared harness")
        }
    } else {
        print("C     lua_parse: shared/bench not found (set IOT_SHARED_BENCH)")
    }

    // Lua through the parser (hook, memory cap, pool, records out).
    var luaConfig = LuaEngine.Configuration()
    luaConfig.poolSize = 1
    let lua = LuaEngine(configuration: luaConfig)
    let parser = try LuaScriptParser(source: luaParser, name: "bench", engine: lua)
    _ = try measure(parser, messages, calls: min(luaCalls, 10_000))  // warm-up
    let sdk = try measure(parser, messages, calls: luaCalls)
    print(
        "SDK   LuaScriptParser parse(msg) → [DeviceRecord]:       \(grouped(sdk.rate)) calls/s, \(grouped(sdk.cpuRate)) per CPU-s   (checksum \(Int(sdk.checksum)); returns {temp, hum} as parse.lua does)"
    )
    let recordParser = try LuaScriptParser(source: luaRecordParser, name: "bench-record", engine: lua)
    _ = try measure(recordParser, messages, calls: min(luaCalls, 10_000))
    let nested = try measure(recordParser, messages, calls: luaCalls)
    print(
        "SDK   LuaScriptParser, record form {values = {…}}:        \(grouped(nested.rate)) calls/s, \(grouped(nested.cpuRate)) per CPU-s   (checksum \(Int(nested.checksum)))"
    )

    // The shared script unchanged, through the generic ScriptEngine API.
    if let shared = sharedBenchDirectory(), let source = readFile(shared + "/src/parse.lua") {
        let script = try lua.compile(source, name: "parse.lua")
        let n = min(luaCalls, 200_000)
        let texts = messages.map { String(decoding: $0.payload, as: UTF8.self) }
        var sum = 0.0
        let cpu = threadCPUSeconds()
        let start = monotonicSeconds()
        for i in 0..<n {
            if case .object(let o) = try await script.call("parse", [.string(texts[i % texts.count])]),
                case .number(let t)? = o["temp"], case .number(let h)? = o["hum"]
            {
                sum += t + h
            }
        }
        let rate = Double(n) / (monotonicSeconds() - start)
        let cpuRate = Double(n) / (threadCPUSeconds() - cpu)
        print(
            "SDK   LuaEngine call(\"parse\", [payload]) (parse.lua as is): \(grouped(rate)) calls/s, \(grouped(cpuRate)) per CPU-s (checksum \(Int(sum)))"
        )
    }
    if let cRate, let cCPURate {
        print(
            String(
                format:
                    "ratio LuaScriptParser / C lua_parse: %.2f× wall clock, %.2f× per CPU second   (goal ≥ 0.50×); record form %.2f× / %.2f×",
                sdk.rate / cRate, sdk.cpuRate / cCPURate, nested.rate / cRate, nested.cpuRate / cCPURate))
    }

    // JavaScript: worker processes (the isolation) vs. in process.
    var jsConfig = JavaScriptEngine.Configuration()
    jsConfig.poolSize = 1
    let workers = try JavaScriptEngine(configuration: jsConfig)
    defer { workers.shutdown() }
    let jsWorker = try JavaScriptParser(source: jsParser, name: "bench-js", engine: workers)
    _ = try measure(jsWorker, messages, calls: min(jsCalls, 1_000))
    let isolated = try measure(jsWorker, messages, calls: jsCalls)
    print(
        "SDK   JavaScriptParser, worker process (killable):        \(grouped(isolated.rate)) calls/s   (checksum \(Int(isolated.checksum)), \(isolated.timeouts) timeouts)"
    )

    jsConfig.isolation = .inProcess
    let inProcess = try JavaScriptEngine(configuration: jsConfig)
    let jsLocal = try JavaScriptParser(source: jsParser, name: "bench-js", engine: inProcess)
    _ = try measure(jsLocal, messages, calls: min(jsCalls, 1_000))
    let local = try measure(jsLocal, messages, calls: jsCalls)
    print(
        "SDK   JavaScriptParser, in process (no timeout possible): \(grouped(local.rate)) calls/s   (checksum \(Int(local.checksum)))"
    )
    print(
        String(
            format: "cost of the isolation: %.2f× the in-process rate (%.1f µs per call added)",
            isolated.rate / local.rate, (1 / isolated.rate - 1 / local.rate) * 1e6))

    // Python: worker processes, the same logic, beside the JavaScript worker of this run.
    var pyConfig = PythonEngine.Configuration()
    pyConfig.poolSize = 1
    let python = try PythonEngine(configuration: pyConfig)
    defer { python.shutdown() }
    let pyWorker = try PythonParser(source: pythonParser, name: "bench-py", engine: python)
    _ = try measure(pyWorker, messages, calls: min(jsCalls, 1_000))
    let py = try measure(pyWorker, messages, calls: jsCalls)
    print(
        "SDK   PythonParser, worker process (killable):            \(grouped(py.rate)) calls/s   (checksum \(Int(py.checksum)), \(py.timeouts) timeouts)"
    )
    print(
        String(
            format: "ratio PythonParser / JavaScriptParser (both in worker processes, this run): %.2f×",
            py.rate / isolated.rate))

    // A runaway call: how long until the caller gets its timeout and the next call is served.
    let spin = try workers.compile("function spin() { while (true) {} }\nfunction ok() { return 1; }", name: "spin")
    let t0 = monotonicSeconds()
    do { _ = try await spin.call("spin", []) } catch {}
    let t1 = monotonicSeconds()
    _ = try await spin.call("ok", [])
    let t2 = monotonicSeconds()
    print(
        String(
            format: "JS runaway loop: timeout after %.1f ms; next call (fresh worker) %.1f ms", (t1 - t0) * 1000,
            (t2 - t1) * 1000))
}

private func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var s = self[...]
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
