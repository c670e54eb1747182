public import IoTCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs sandboxed JavaScript (ES5.1, Duktape 2.7) in a pool of killable worker processes.
///
/// ```swift
/// let js = try JavaScriptEngine()
/// let script = try js.compile("function add(a, b) { return a + b; }", name: "add")
/// let three = try await script.call("add", [.number(1), .number(2)])   // .number(3)
/// js.shutdown()   // or let it go: deinit kills the workers
/// ```
///
/// Debian's Duktape is built without `DUK_USE_EXEC_TIMEOUT_CHECK`, so a running script cannot be
/// interrupted in process. Each call therefore runs in an `iot-js-worker` child process; when a call
/// exceeds ``Configuration/timeLimit`` the engine kills that worker with `SIGKILL`, fails the call with
/// ``IoTError/Code/timeout``, and starts a fresh worker on the next call. A worker that dies (memory
/// exhausted, fatal error) fails only the call it was running.
///
/// Inside a worker each script has its own global environment (a Duktape thread), without `require`,
/// `Duktape`, `print` or `alert`; Duktape has no file, process or network access of its own. The heap
/// allocates at most ``Configuration/memoryLimit`` bytes while a script runs.
///
/// Calls block their thread on the worker's socket for at most the time limit: ``CompiledScript/call(_:_:)``
/// does that on a Dispatch queue, ``JavaScriptParser`` on the calling thread.
public final class JavaScriptEngine: ScriptEngine, BlockingScriptEngine {
    /// Limits, sizes and isolation of a ``JavaScriptEngine``; every property has a default.
    public struct Configuration: Sendable {
        /// Where scripts run.
        public enum Isolation: Sendable, Hashable {
            /// In `iot-js-worker` processes, killed on timeout (the default).
            case workerProcesses
            /// In this process, with no time limit at all: a runaway loop hangs its caller forever, and a
            /// fatal Duktape error ends the process. For trusted scripts and for measuring the cost of
            /// the isolation only.
            case inProcess
        }

        /// Where scripts run. Default: ``Isolation/workerProcesses``.
        public var isolation: Isolation
        /// Worker processes (or in-process heaps), the number of calls that run at once.
        /// Default: the number of cores.
        public var poolSize: Int
        /// Wall-clock time one call may take, including the round trip to the worker. Default: 100 ms.
        public var timeLimit: Duration
        /// Bytes one worker's heap may allocate while a script runs. Default: 64 MiB.
        public var memoryLimit: Int
        /// The `iot-js-worker` executable. Default (`nil`): `iot-js-worker` in the directory of the
        /// running executable (`/proc/self/exe`), which is where SwiftPM builds it.
        public var workerPath: String?

        /// Creates the default configuration.
        public init() {
            isolation = .workerProcesses
            poolSize = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            timeLimit = .milliseconds(100)
            memoryLimit = 64 << 20
            workerPath = nil
        }
    }

    /// `javascript`.
    public let language = "javascript"
    /// The limits this engine runs scripts with.
    public let configuration: Configuration
    /// The worker executable in use (empty in process).
    public let workerPath: String

    private let workers: ScriptWorkers
    private let heaps: BlockingPool<DuktapeHeap>
    private let scripts: RetiredScripts

    /// Creates an engine. Workers are started on first use.
    ///
    /// Throws ``IoTError/Code/unavailable`` when the worker executable cannot be found.
    public init(configuration: Configuration = Configuration()) throws(IoTError) {
        self.configuration = configuration
        var path = ""
        if configuration.isolation == .workerProcesses {
            path = configuration.workerPath ?? Self.defaultWorkerPath()
            guard access(path, X_OK) == 0 else {
                throw IoTError(
                    .unavailable,
                    "the JavaScript worker '\(path)' is missing; build the iot-js-worker product or set Configuration.workerPath"
                )
            }
        }
        workerPath = path
        let memoryLimit = configuration.memoryLimit
        let scripts = RetiredScripts()
        self.scripts = scripts
        workers = ScriptWorkers(
            name: "the JavaScript worker", path: path, poolSize: configuration.poolSize,
            timeLimit: configuration.timeLimit, memoryLimit: memoryLimit, scripts: scripts)
        heaps = BlockingPool(capacity: configuration.poolSize) { () throws(IoTError) in
            try DuktapeHeap(memoryLimit: memoryLimit)
        }
    }

    deinit { shutdown() }

    /// Stops every idle worker now and every busy one when its call ends; later calls fail with
    /// ``IoTError/Code/shutdown``. Called by `deinit`.
    public func shutdown() {
        workers.shutdown()
        _ = heaps.close()
    }

    static func defaultWorkerPath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "iot-js-worker" }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return dir + "/iot-js-worker"
    }

    /// Compiles `source`, runs its top level once, and returns the script.
    ///
    /// A syntax error or an error thrown by the top level throws ``IoTError/Code/script`` with the
    /// script's message and line (`SyntaxError: parse error (line 3)`); a top level that runs past the
    /// time limit throws ``IoTError/Code/timeout``.
    public func compile(_ source: String, name: String) throws(IoTError) -> any CompiledScript {
        try compileJavaScript(source, name: name)
    }

    func compileJavaScript(_ source: String, name: String) throws(IoTError) -> JavaScriptCompiledScript {
        let script = scripts.script(name: name, source: source)
        switch configuration.isolation {
        case .workerProcesses:
            try workers.load(script)
        case .inProcess:
            try withHeap { (h) throws(IoTError) in try h.load(id: script.id, name: name, source: source) }
        }
        return JavaScriptCompiledScript(engine: self, source: script)
    }

    /// Calls `function` of `script` on the calling thread, blocking it for at most the time limit.
    func callNow(_ script: EngineScript, _ function: String, _ arguments: [ScriptValue]) throws(IoTError)
        -> ScriptValue
    {
        switch configuration.isolation {
        case .workerProcesses:
            return try workers.call(script, function, arguments)
        case .inProcess:
            return try withHeap { (h) throws(IoTError) -> ScriptValue in
                if !h.has(script.id) { try h.load(id: script.id, name: script.name, source: script.source) }
                return try h.call(id: script.id, name: script.name, function: function, arguments: arguments)
            }
        }
    }

    private func withHeap<T>(_ body: (DuktapeHeap) throws(IoTError) -> T) throws(IoTError) -> T {
        try heaps.with { (h) throws(IoTError) -> (T, reusable: Bool) in
            scripts.catchUp(&h.retiredGeneration) { for id in $0 { h.unload(id) } }
            return (try body(h), true)
        }
    }

    /// Forgets a script that is no longer referenced; each worker frees it on its next use.
    func retire(_ id: UInt64) {
        scripts.retire(id)
    }
}

/// A compiled JavaScript script.
typealias JavaScriptCompiledScript = BlockingCompiledScript<JavaScriptEngine>
