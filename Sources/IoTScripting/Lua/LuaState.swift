internal import CIoTLua
import IoTCore

#if canImport(Glibc)
    import Glibc
#endif

/// Called by Lua only for an error outside any `lua_pcall`, which this module never causes; ends the
/// process with a message instead of Lua's silent `abort()`.
// `L` is the Lua state in Lua's own C API and manual.
// swift-format-ignore: AlwaysUseLowerCamelCase
private let luaPanic: lua_CFunction = { L in
    var n = 0
    let msg = lua_tolstring(L, -1, &n).map { String(cString: $0) } ?? "?"
    let line = "IoTScripting: unprotected Lua error: \(msg)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

/// Builds the sandbox once per state and returns the function that makes a fresh global table for each
/// script. Scripts see copies of the safe libraries, so one script cannot change another's `string`.
private let sandboxPrelude = """
    collectgarbage("generational", 200, 100)  -- most garbage of a parse call dies young; minor collections at 200 % growth
    local G = _G
    local rawload, pairs, type, error, tostring, gc = load, pairs, type, error, tostring, collectgarbage
    for _, k in ipairs({ "dofile", "loadfile", "require", "collectgarbage", "load", "print", "warn" }) do G[k] = nil end
    G.string.dump = nil
    local os = G.os
    G.os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
    getmetatable("").__metatable = false
    local libs = { string = true, table = true, math = true, utf8 = true, os = true, coroutine = true }
    local function copy(t) local c = {} for k, v in pairs(t) do c[k] = v end return c end
    return function()
      local env = {}
      for k, v in pairs(G) do if libs[k] then env[k] = copy(v) else env[k] = v end end
      env._G = env
      env.load = function(chunk, name, mode, e)
        if type(chunk) ~= "string" and type(chunk) ~= "function" then
          error("bad argument #1 to 'load' (string expected)", 2)
        end
        return rawload(chunk, name, "t", e or env)
      end
      env.collectgarbage = function(opt)
        if opt == nil or opt == "collect" or opt == "count" or opt == "step" then return gc(opt or "collect") end
        error("collectgarbage('" .. tostring(opt) .. "') is not allowed", 2)
      end
      return env
    end
    """

/// One sandboxed `lua_State` with its limits, and the scripts loaded into it.
///
/// `@unchecked Sendable`: a state is only ever used by the one caller that took it from the engine's
/// ``BlockingPool`` (acquire → use → release, with the pool's mutex ordering the hand-over), so no two
/// threads touch `L`, `limits` or `scripts` at the same time. Freed once, in `deinit`.
final class LuaState: @unchecked Sendable {
    // swift-format-ignore: AlwaysUseLowerCamelCase
    let L: OpaquePointer
    let limits: UnsafeMutablePointer<ciot_lua_limits>
    let configuration: LuaEngine.Configuration
    /// ``LuaEngine/Configuration/timeLimit`` and the instruction budget in hook ticks, computed once.
    private let timeLimitNanoseconds: Int64
    private let maxTicks: Int64
    private var newEnvRef: Int32 = -2  // LUA_NOREF until the sandbox is set up
    /// Script id → registry reference of the script's global table.
    private(set) var scripts: [UInt64: Int32] = [:]
    /// The last script pushed, to skip the dictionary on repeated calls of one script.
    private var lastScript: (id: UInt64, ref: Int32) = (0, -2)
    /// The engine's retirement generation this state has caught up with.
    var retiredGeneration = 0
    /// Registry references of the ``Key`` strings, in ``Key`` order.
    private var keyRefs: [lua_Integer] = []
    /// The last strings pushed by ``pushRecent(_:slot:)``, per slot, with their registry references.
    private var recent: [(text: String, ref: lua_Integer)] = [("", -2), ("", -2)]

    /// Table keys the `parse(msg)` fast path reads and writes on every call. Each is interned once per
    /// state and pushed by its registry reference, which skips hashing the text on every call.
    enum Key: Int, CaseIterable {
        case parse, payload, transport, topic, device, receivedAt, values, identificationCode, time

        var text: String {
            switch self {
            case .parse: "parse"
            case .payload: "payload"
            case .transport: "transport"
            case .topic: "topic"
            case .device: "device"
            case .receivedAt: "receivedAt"
            case .values: "values"
            case .identificationCode: "identificationCode"
            case .time: "time"
            }
        }
    }
    static let hookInterval: Int32 = 1000

    init(configuration: LuaEngine.Configuration) throws(IoTError) {
        self.configuration = configuration
        timeLimitNanoseconds = configuration.timeLimit.inNanoseconds
        maxTicks = Int64(max(1, configuration.instructionLimit / Int(Self.hookInterval)))
        limits = .allocate(capacity: 1)
        limits.initialize(
            to: ciot_lua_limits(
                used: 0, max_bytes: configuration.memoryLimit, enforce: 0, timed_out: 0, ticks: 0, max_ticks: 0,
                deadline_ns: 0))
        // swift-format-ignore: AlwaysUseLowerCamelCase
        guard let L = lua_newstate(ciot_lua_alloc, UnsafeMutableRawPointer(limits)) else {
            limits.deallocate()
            throw IoTError(.script, "cannot create a Lua state (out of memory)")
        }
        self.L = L
        lua_atpanic(L, luaPanic)
        // Opening the libraries allocates outside lua_pcall: the cap is not enforced yet (enforce == 0).
        luaL_requiref(L, "_G", luaopen_base, 1)
        luaL_requiref(L, "coroutine", luaopen_coroutine, 1)
        luaL_requiref(L, "table", luaopen_table, 1)
        luaL_requiref(L, "string", luaopen_string, 1)
        luaL_requiref(L, "math", luaopen_math, 1)
        luaL_requiref(L, "utf8", luaopen_utf8, 1)
        luaL_requiref(L, "os", luaopen_os, 1)
        lua_settop(L, 0)
        lua_sethook(L, ciot_lua_budget_hook, ciot_lua_maskcount(), Self.hookInterval)
        let status = sandboxPrelude.withCString { luaL_loadbufferx(L, $0, strlen($0), "=sandbox", "t") }
        guard status == LUA_OK, protectedCall(arguments: 0, results: 1) == LUA_OK else {
            let message = Self.errorMessage(L)
            // Every stored property is set: deinit closes the state and frees the limits.
            throw IoTError(.script, "cannot set up the Lua sandbox: \(message)")
        }
        newEnvRef = luaL_ref(L, ciot_lua_registryindex())
        for key in Key.allCases {
            pushString(key.text)
            keyRefs.append(lua_Integer(luaL_ref(L, ciot_lua_registryindex())))
        }
    }

    /// Pushes `text`, which is usually the same as the last one pushed in `slot` (a message's transport
    /// or device): then it comes from a registry reference instead of being hashed again.
    func pushRecent(_ text: String, slot: Int) {
        if recent[slot].ref != -2 && recent[slot].text == text {
            lua_rawgeti(L, ciot_lua_registryindex(), recent[slot].ref)
            return
        }
        if recent[slot].ref != -2 { luaL_unref(L, ciot_lua_registryindex(), Int32(recent[slot].ref)) }
        pushString(text)
        lua_pushvalue(L, -1)
        recent[slot] = (text, lua_Integer(luaL_ref(L, ciot_lua_registryindex())))
    }

    /// Pushes `key`'s interned string.
    func push(_ key: Key) {
        lua_rawgeti(L, ciot_lua_registryindex(), keyRefs[key.rawValue])
    }

    deinit {
        lua_close(L)
        limits.deallocate()
    }

    /// Runs the function below its arguments on the stack under `lua_pcall`, with the budget, deadline
    /// and memory cap in force. Returns the Lua status.
    func protectedCall(arguments: Int32, results: Int32) -> Int32 {
        let l = limits
        if l.pointee.timed_out != 0 {
            lua_sethook(L, ciot_lua_budget_hook, ciot_lua_maskcount(), Self.hookInterval)
        }
        l.pointee.timed_out = 0
        l.pointee.ticks = 0
        l.pointee.max_ticks = maxTicks
        l.pointee.deadline_ns = ciot_lua_now_ns() + timeLimitNanoseconds
        l.pointee.enforce = 1
        let status = ciot_lua_pcall(L, arguments, results, 0)
        l.pointee.enforce = 0
        return status
    }

    /// The error for a failed `protectedCall`, whose error object is on the stack top (popped).
    func failure(_ status: Int32, name: String) -> IoTError {
        defer { ciot_lua_pop(L, 1) }
        if limits.pointee.timed_out != 0 {
            return IoTError(
                .timeout,
                "script '\(name)' exceeded its time budget (\(configuration.timeLimit) or \(configuration.instructionLimit) instructions)"
            )
        }
        if status == LUA_ERRMEM {
            return IoTError(.script, "script '\(name)' exceeded its memory limit of \(configuration.memoryLimit) bytes")
        }
        return IoTError(.script, ScriptMessage.lua(Self.errorMessage(L), chunk: name))
    }

    /// The error object on the stack top as text (not popped).
    // swift-format-ignore: AlwaysUseLowerCamelCase
    static func errorMessage(_ L: OpaquePointer) -> String {
        if lua_type(L, -1) == LUA_TSTRING, let p = lua_tolstring(L, -1, nil) { return String(cString: p) }
        return "(error object is a \(String(cString: lua_typename(L, lua_type(L, -1)))) value)"
    }

    /// Compiles `source` in text mode, without running it. Throws the syntax error with its line.
    func checkSyntax(_ source: String, name: String) throws(IoTError) {
        let status = loadChunk(source, name: name)
        if status != LUA_OK { throw failure(status, name: name) }
        ciot_lua_pop(L, 1)
    }

    private func loadChunk(_ source: String, name: String) -> Int32 {
        limits.pointee.enforce = 1
        defer { limits.pointee.enforce = 0 }
        var source = source
        return source.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { chars in
                luaL_loadbufferx(L, chars.baseAddress, chars.count, "=" + name, "t")
            }
        }
    }

    /// Makes sure the script is loaded (its top level run once in its own global table) and pushes that
    /// table. Throws the script's compile or run error.
    func pushEnvironment(of script: EngineScript) throws(IoTError) {
        if lastScript.id == script.id {
            lua_rawgeti(L, ciot_lua_registryindex(), lua_Integer(lastScript.ref))
            return
        }
        if let ref = scripts[script.id] {
            lastScript = (script.id, ref)
            lua_rawgeti(L, ciot_lua_registryindex(), lua_Integer(ref))
            return
        }
        let top = lua_gettop(L)
        let status = loadChunk(script.source, name: script.name)
        if status != LUA_OK { throw failure(status, name: script.name) }
        // A fresh global table for this script, made by the sandbox's function.
        lua_rawgeti(L, ciot_lua_registryindex(), lua_Integer(newEnvRef))
        let envStatus = protectedCall(arguments: 0, results: 1)
        if envStatus != LUA_OK {
            let error = failure(envStatus, name: script.name)
            lua_settop(L, top)
            throw error
        }
        lua_pushvalue(L, -1)  // chunk, env, env
        lua_rotate(L, -3, 1)  // env, chunk, env
        _ = lua_setupvalue(L, -2, 1)  // the chunk's _ENV; leaves env, chunk
        let runStatus = protectedCall(arguments: 0, results: 0)
        if runStatus != LUA_OK {
            let error = failure(runStatus, name: script.name)
            lua_settop(L, top)
            throw error
        }
        lua_pushvalue(L, -1)
        scripts[script.id] = luaL_ref(L, ciot_lua_registryindex())
    }

    /// Pushes the script's global function `name`, or throws when it is not a function.
    func pushFunction(_ function: String, of script: EngineScript) throws(IoTError) {
        try pushEnvironment(of: script)
        if function == Key.parse.text {
            push(.parse)
        } else {
            _ = lua_pushlstring(L, function, function.utf8.count)
        }
        _ = lua_rawget(L, -2)
        guard lua_type(L, -1) == LUA_TFUNCTION else {
            lua_settop(L, -3)
            throw IoTError(.script, "script '\(script.name)' defines no function '\(function)'")
        }
        lua_rotate(L, -2, 1)  // function, env
        ciot_lua_pop(L, 1)
    }

    /// Forgets scripts that were released, freeing their tables.
    func unload(_ ids: some Sequence<UInt64>) {
        for id in ids {
            if let ref = scripts.removeValue(forKey: id) { luaL_unref(L, ciot_lua_registryindex(), ref) }
            if lastScript.id == id { lastScript = (0, -2) }
        }
    }
}
