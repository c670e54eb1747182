internal import CIoTLua
public import IoTCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs sandboxed Lua 5.4 scripts, in process, with an instruction budget, a deadline and a memory cap.
///
/// ```swift
/// let lua = LuaEngine()
/// let script = try lua.compile("function double(x) return x * 2 end", name: "double")
/// let four = try await script.call("double", [.number(2)])   // .number(4)
/// ```
///
/// Each script runs in its own global table with copies of the safe libraries (`string`, `table`,
/// `math`, `utf8`, `coroutine`, and `os.time/clock/date/difftime`). There is no `io`, `os.execute`,
/// `package`, `require`, `debug`, `dofile`, `loadfile` or `string.dump`; `load` accepts text only, and
/// `collectgarbage` only `collect`, `count` and `step`. A call that runs longer than
/// ``Configuration/timeLimit`` or ``Configuration/instructionLimit`` fails with ``IoTError/Code/timeout``;
/// one that allocates beyond ``Configuration/memoryLimit`` fails with ``IoTError/Code/script``. Either
/// way the engine serves the next call.
///
/// Calls run on the calling thread (a Lua call is microseconds, and at most ``Configuration/timeLimit``),
/// on one of ``Configuration/poolSize`` interpreter states; callers beyond that wait for a free state.
public final class LuaEngine: ScriptEngine {
    /// Limits and sizes of a ``LuaEngine``; every property has a default.
    public struct Configuration: Sendable {
        /// Interpreter states, the number of calls that run at once. Default: the number of cores.
        public var poolSize: Int
        /// Lua VM instructions one call may execute (checked every 1000). Default: 10 million, well under
        /// 100 ms of pure Lua on a current core.
        public var instructionLimit: Int
        /// Wall-clock time one call may take, checked every 1000 instructions. Default: 100 ms.
        /// A single long-running library call (a huge `string.rep`, a pathological pattern) is not
        /// interrupted until it returns; the memory cap bounds the first.
        public var timeLimit: Duration
        /// Bytes one interpreter state may allocate, scripts and their data together. Default: 32 MiB.
        public var memoryLimit: Int

        /// Creates the default configuration.
        public init() {
            poolSize = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            instructionLimit = 10_000_000
            timeLimit = .milliseconds(100)
            memoryLimit = 32 << 20
        }
    }

    /// `lua`.
    public let language = "lua"
    /// The limits this engine runs scripts with.
    public let configuration: Configuration

    private let pool: BlockingPool<LuaState>
    private let scripts = RetiredScripts()

    /// Creates an engine. Interpreter states are created on first use.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        pool = BlockingPool(capacity: configuration.poolSize) { [configuration] () throws(IoTError) in
            try LuaState(configuration: configuration)
        }
    }

    /// Compiles `source` (text only), runs its top level once, and returns the script.
    ///
    /// A syntax error, or an error raised by the top level, throws ``IoTError/Code/script`` with the
    /// script's message and line, e.g. `unexpected symbol near '+' (line 3)`.
    public func compile(_ source: String, name: String) throws(IoTError) -> any CompiledScript {
        try compileLua(source, name: name)
    }

    func compileLua(_ source: String, name: String) throws(IoTError) -> LuaCompiledScript {
        let script = scripts.script(name: name, source: source)
        try withState { (state) throws(IoTError) in
            let top = lua_gettop(state.L)
            defer { lua_settop(state.L, top) }
            try state.pushEnvironment(of: script)
        }
        return LuaCompiledScript(engine: self, source: script)
    }

    /// Runs `body` with a state of the pool. A state whose memory is nearly exhausted by what scripts
    /// keep in their globals is dropped afterwards, and a fresh one takes its place.
    func withState<T>(_ body: (LuaState) throws(IoTError) -> T) throws(IoTError) -> T {
        let state = try pool.acquire()
        defer { pool.release(state, reuse: state.limits.pointee.used < configuration.memoryLimit / 10 * 9) }
        scripts.catchUp(&state.retiredGeneration) { state.unload($0) }
        return try body(state)
    }

    /// Forgets a script that is no longer referenced; each state frees it on its next use.
    func retire(_ id: UInt64) {
        scripts.retire(id)
    }
}

/// A compiled Lua script: its source, loaded on each state on first use there.
final class LuaCompiledScript: CompiledScript {
    let engine: LuaEngine
    let source: EngineScript

    init(engine: LuaEngine, source: EngineScript) {
        self.engine = engine
        self.source = source
    }

    deinit { engine.retire(source.id) }

    func call(_ function: String, _ arguments: [ScriptValue]) async throws(IoTError) -> ScriptValue {
        try callNow(function, arguments)
    }

    /// Calls `function` on the calling thread.
    func callNow(_ function: String, _ arguments: [ScriptValue]) throws(IoTError) -> ScriptValue {
        let source = self.source
        return try engine.withState { (state) throws(IoTError) -> ScriptValue in
            // `L`, as in Lua's C API.
            // swift-format-ignore: AlwaysUseLowerCamelCase
            let L = state.L
            let top = lua_gettop(L)
            defer { lua_settop(L, top) }
            try state.pushFunction(function, of: source)
            for a in arguments { try state.push(a) }
            let status = state.protectedCall(arguments: Int32(arguments.count), results: 1)
            if status != LUA_OK { throw state.failure(status, name: source.name) }
            return try state.value(at: -1)
        }
    }
}
