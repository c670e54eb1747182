public import IoTCore

#if canImport(Glibc)
    import Glibc
#endif

/// Runs sandboxed Python 3 in a pool of killable worker processes, as ``JavaScriptEngine`` runs JavaScript.
///
/// ```swift
/// let python = try PythonEngine()
/// let script = try python.compile("def add(a, b):\n    return a + b\n", name: "add")
/// let three = try await script.call("add", [.number(1), .number(2)])   // .number(3)
/// ```
///
/// Each worker is `python3 -I -S` running ``PythonWorkerSource``: isolated from the environment and
/// `site-packages`, with no new file descriptor (no network, no file opened), no file written, its address space
/// capped at ``Configuration/memoryLimit`` above what the interpreter uses, an audit hook refusing processes,
/// files and imports outside a small allow-list, and builtins without `open`. A call that outlives
/// ``Configuration/timeLimit`` kills its worker (``IoTError/Code/timeout``); the next call starts a new one.
/// Numbers cross as IEEE doubles, lists and tuples as arrays, dicts as objects.
public final class PythonEngine: ScriptEngine, BlockingScriptEngine {
    /// Limits and the interpreter of a ``PythonEngine``; every property has a default.
    public struct Configuration: Sendable {
        /// Worker processes, the number of calls that run at once. Default: the number of cores.
        public var poolSize: Int
        /// Wall-clock time one call may take, including the round trip to the worker. Default: 100 ms.
        public var timeLimit: Duration
        /// Bytes of address space a worker may add to what the interpreter uses after start-up. Default: 64 MiB.
        public var memoryLimit: Int
        /// The Python 3 interpreter. Default (`nil`): `/usr/bin/python3`, else the first `python3` on `PATH`.
        public var interpreter: String?

        /// Creates the default configuration.
        public init() {
            poolSize = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            timeLimit = .milliseconds(100)
            memoryLimit = 64 << 20
            interpreter = nil
        }
    }

    /// `python`.
    public let language = "python"
    /// The limits this engine runs scripts with.
    public let configuration: Configuration
    /// The interpreter in use.
    public let interpreter: String
    private let workers: ScriptWorkers
    private let scripts: RetiredScripts

    /// Creates an engine. Workers are started on first use.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unavailable`` when no Python 3 interpreter is found.
    public init(configuration: Configuration = Configuration()) throws(IoTError) {
        self.configuration = configuration
        guard let interpreter = configuration.interpreter ?? Self.findPython(), access(interpreter, X_OK) == 0 else {
            throw IoTError(
                .unavailable,
                "no Python 3 interpreter was found; install python3 (apt install python3) or set Configuration.interpreter"
            )
        }
        self.interpreter = interpreter
        let scripts = RetiredScripts()
        self.scripts = scripts
        workers = ScriptWorkers(
            name: "the Python worker", path: interpreter, arguments: ["-I", "-S", "-c", PythonWorkerSource.program],
            poolSize: configuration.poolSize, timeLimit: configuration.timeLimit,
            memoryLimit: configuration.memoryLimit, scripts: scripts)
    }

    deinit { shutdown() }

    /// Stops every idle worker now and every busy one when its call ends; later calls fail with
    /// ``IoTCore/IoTError/Code/shutdown``. Called by `deinit`.
    public func shutdown() {
        workers.shutdown()
    }

    static func findPython() -> String? {
        var candidates = ["/usr/bin/python3"]
        if let path = getenv("PATH").map({ String(cString: $0) }) {
            candidates += path.split(separator: ":").map { "\($0)/python3" }
        }
        return candidates.first { access($0, X_OK) == 0 }
    }

    /// Loads `source` into a worker, running its top level once, and returns the script.
    ///
    /// A syntax error or an exception of the top level throws ``IoTCore/IoTError/Code/script`` with the message
    /// and line (`SyntaxError: invalid syntax (line 3)`); a top level that runs past the time limit throws
    /// ``IoTCore/IoTError/Code/timeout``.
    public func compile(_ source: String, name: String) throws(IoTError) -> any CompiledScript {
        try compilePython(source, name: name)
    }

    func compilePython(_ source: String, name: String) throws(IoTError) -> PythonCompiledScript {
        let script = scripts.script(name: name, source: source)
        try workers.load(script)
        return PythonCompiledScript(engine: self, source: script)
    }

    func callNow(_ script: EngineScript, _ function: String, _ arguments: [ScriptValue]) throws(IoTError)
        -> ScriptValue
    {
        try workers.call(script, function, arguments)
    }

    /// Forgets a script that is no longer referenced; each worker frees it on its next use.
    func retire(_ id: UInt64) {
        scripts.retire(id)
    }
}

/// A compiled Python script.
typealias PythonCompiledScript = BlockingCompiledScript<PythonEngine>

/// A ``IoTCore/Parser`` written in Python: the script defines `def parse(msg)` in the same form as
/// ``LuaScriptParser`` (`msg` is a dict with `payload` as a string, `transport`, and when known `topic`,
/// `device` and `receivedAt`), returning a list of records or one record.
///
/// ```swift
/// let parser = try PythonParser(source: """
///     import json
///     def parse(msg):
///         d = json.loads(msg["payload"])
///         return [{"values": {"temp": d["t"]}}]
///     """, name: "thermo", engine: try PythonEngine())
/// ```
///
/// Errors are reported as by ``LuaScriptParser``. `parse(_:)` blocks its calling thread on the worker's socket
/// for at most the engine's ``PythonEngine/Configuration/timeLimit``.
public struct PythonParser: Parser {
    /// The parser's name, for configuration and counters.
    public let name: String
    let script: PythonCompiledScript

    /// Compiles the script on `engine`.
    public init(source: String, name: String = "python", engine: PythonEngine) throws(IoTError) {
        self.name = name
        script = try engine.compilePython(source, name: name)
    }

    /// Runs `parse(msg)` and returns its records.
    public func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
        do {
            let result = try script.callNow("parse", [ScriptRecords.argument(message)])
            return try ScriptRecords.records(result, message: message, script: name)
        } catch {
            throw rejection(error, script: name)
        }
    }
}
