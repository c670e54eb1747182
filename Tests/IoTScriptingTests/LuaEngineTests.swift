import IoTCore
import IoTScripting
import Testing

@Suite struct LuaEngineTests {
    let lua = LuaEngine()

    @Test func valuesRoundTrip() async throws {
        let script = try lua.compile("function id(...) return ... end", name: "id")
        let values: [ScriptValue] = [
            .null, .bool(true), .bool(false), .number(42), .number(-7.25), .number(1e300), .string(""),
            .string("grüße \u{1F600}"),
            .array([.number(1), .string("two"), .bool(true)]),
            .object(["a": .number(1), "b": .object(["c": .array([.string("d")])])]),
            .array([]),
        ]
        for v in values {
            #expect(try await script.call("id", [v]) == v)
        }
    }

    @Test func integersAndFloatsKeepTheirLuaType() async throws {
        let script = try lua.compile("function t(x) return math.type(x) end", name: "t")
        #expect(try await script.call("t", [.number(3)]) == .string("integer"))
        #expect(try await script.call("t", [.number(3.5)]) == .string("float"))
    }

    @Test func tablesConvertToArraysAndObjects() async throws {
        let script = try lua.compile(
            """
            function f()
              return { list = {10, 20, 30}, map = {x = 1, [5] = "five"}, empty = {}, float = 0.5, int = 3 }
            end
            """, name: "f")
        let v = try await script.call("f", [])
        #expect(
            v
                == .object([
                    "list": .array([.number(10), .number(20), .number(30)]),
                    "map": .object(["x": .number(1), "5": .string("five")]),
                    "empty": .array([]), "float": .number(0.5), "int": .number(3),
                ]))
    }

    @Test func compileErrorsNameTheLine() async throws {
        let e = await expectError(.script) {
            _ = try lua.compile("local a = 1\nlocal b = 2\nlocal c = = 3\n", name: "bad")
        }
        #expect(e?.message.contains("(line 3)") == true, "\(String(describing: e))")
        let r = await expectError(.script) { _ = try lua.compile("x = 1\nerror('top level failed')\n", name: "top") }
        #expect(r?.message == "top level failed (line 2)")
    }

    @Test func runtimeErrorsCarryMessageAndLine() async throws {
        let script = try lua.compile(
            "function f(x)\n  local t = nil\n  return t.field\nend\nfunction g() error('boom') end", name: "rt")
        let e = await expectError(.script) { _ = try await script.call("f", [.number(1)]) }
        #expect(e?.message.contains("attempt to index a nil value") == true)
        #expect(e?.message.hasSuffix("(line 3)") == true, "\(String(describing: e))")
        let g = await expectError(.script) { _ = try await script.call("g", []) }
        #expect(g?.message == "boom (line 5)")
        await expectError(.script) { _ = try await script.call("missing", []) }
    }

    @Test(arguments: [
        "return io.open('/etc/passwd')",
        "return os.execute('id')",
        "return os.getenv('HOME')",
        "return os.remove('/tmp/x')",
        "return require('os')",
        "return package.loadlib('libc.so.6', 'system')",
        "return debug.getregistry()",
        "return dofile('/etc/passwd')",
        "return loadfile('/etc/passwd')",
        "return string.dump(function() end)",
        "return load('\\27LuaT\\0')()",
        "return collectgarbage('stop')",
        "return getmetatable('').__index",
        "return print('leak')",
    ])
    func sandboxEscapesAreRefused(_ body: String) async throws {
        let script = try lua.compile("function escape() \(body) end", name: "escape")
        await expectError(.script) { _ = try await script.call("escape", []) }
    }

    @Test func loadIsTextOnlyAndStaysInTheSandbox() async throws {
        let script = try lua.compile(
            """
            function f() return load('return 1 + 1')() end
            function g() return load('return io')() end
            function h() return select(2, load(string.char(27) .. 'Lua')) end
            """, name: "load")
        #expect(try await script.call("f", []) == .number(2))
        #expect(try await script.call("g", []) == .null)
        guard case .string(let m) = try await script.call("h", []) else {
            Issue.record("expected a message")
            return
        }
        #expect(m.contains("binary chunk"))
    }

    @Test func scriptsDoNotSeeEachOthersGlobals() async throws {
        let a = try lua.compile("x = 1; string.upper = nil; function get() return x end", name: "a")
        let b = try lua.compile("function get() return x end; function up(s) return string.upper(s) end", name: "b")
        #expect(try await a.call("get", []) == .number(1))
        #expect(try await b.call("get", []) == .null)
        #expect(try await b.call("up", [.string("x")]) == .string("X"))
    }

    @Test func memoryBombsFailTheCallNotTheProcess() async throws {
        var c = LuaEngine.Configuration()
        c.memoryLimit = 8 << 20
        c.poolSize = 1
        c.timeLimit = .seconds(5)  // only the memory cap may end these calls, even on a loaded machine
        c.instructionLimit = .max / 2
        let small = LuaEngine(configuration: c)
        let script = try small.compile(
            """
            function rep() return #string.rep('x', 1 << 30) end
            function grow() local t = {} for i = 1, 1e8 do t[i] = i end return #t end
            function concat() local s = 'x' while true do s = s .. s end end
            function ok() return 1 end
            """, name: "bomb")
        for f in ["rep", "grow", "concat"] {
            let e = await expectError(.script) { _ = try await script.call(f, []) }
            #expect(e?.message.contains("memory limit") == true, "\(String(describing: e))")
            #expect(try await script.call("ok", []) == .number(1))
        }
    }

    @Test func aStateFilledByGlobalsIsReplaced() async throws {
        var c = LuaEngine.Configuration()
        c.memoryLimit = 4 << 20
        c.poolSize = 1
        c.timeLimit = .seconds(5)
        c.instructionLimit = .max / 2
        let engine = LuaEngine(configuration: c)
        let script = try engine.compile(
            "t = {}\nfunction fill() for i = 1, 1e7 do t[#t + 1] = string.rep('x', 10000) .. i end end\nfunction count() return #t end",
            name: "fill")
        await expectError(.script) { _ = try await script.call("fill", []) }
        // The full state was dropped; a fresh one loads the script again.
        #expect(try await script.call("count", []) == .number(0))
    }

    @Test func releasedScriptsAreFreed() async throws {
        var c = LuaEngine.Configuration()
        c.memoryLimit = 8 << 20
        c.poolSize = 1
        let engine = LuaEngine(configuration: c)
        // Each script keeps ~1 MB in its globals; without freeing released scripts the state would run out.
        for i in 0..<40 {
            let script = try engine.compile(
                "big = string.rep('x', 1 << 20)\nfunction n() return \(i) end", name: "s\(i)")
            #expect(try await script.call("n", []) == .number(Double(i)))
        }
    }

    @Test(arguments: [
        "while true do end",
        "local i = 0 repeat i = i + 1 until false",
        "while true do pcall(function() while true do end end) end",
        "local function f() return f() end f()",
        "local co = coroutine.wrap(function() while true do end end) co()",
        "while true do local ok = pcall(error, 'x') end",
    ])
    func runawayScriptsStopWithinTheBudget(_ body: String) async throws {
        let parser = try LuaScriptParser(
            source:
                "function parse(msg)\n  if msg.payload == 'spin' then \(body) end\n  return { values = { ok = 1 } }\nend",
            engine: lua)
        let run = measured { _ = try parser.parse(InboundMessage(transport: "t", deviceUID: "d", text: "spin")) }
        #expect((run.error as? IoTError)?.code == .timeout, "\(String(describing: run.error))")
        // The budget (10M instructions or 100 ms) bounds the CPU time the script gets; wall-clock time
        // also includes waiting for a core, so it is only checked loosely.
        #expect(run.cpu < 150, "used \(run.cpu) ms of CPU")
        #expect(run.wall < 1000, "took \(run.wall) ms")
        #expect(try parser.parse(InboundMessage(transport: "t", deviceUID: "d", text: "fine")).count == 1)
    }

    @Test func wallClockLimitStopsSlowCalls() async throws {
        var c = LuaEngine.Configuration()
        c.instructionLimit = .max / 2
        c.timeLimit = .milliseconds(30)
        let parser = try LuaScriptParser(
            source: "function parse(msg) while true do end end", engine: LuaEngine(configuration: c))
        let run = measured { _ = try parser.parse(InboundMessage(transport: "t", deviceUID: "d", text: "")) }
        #expect((run.error as? IoTError)?.code == .timeout)
        #expect(run.wall >= 30 && run.cpu < 60, "wall \(run.wall) ms, CPU \(run.cpu) ms")
    }

    @Test func manyConcurrentCallsShareThePool() async throws {
        var c = LuaEngine.Configuration()
        c.poolSize = 3
        let engine = LuaEngine(configuration: c)
        let script = try engine.compile("n = 0\nfunction sq(x) n = n + 1 return x * x end", name: "sq")
        let results = try await withThrowingTaskGroup(of: Double.self) { group in
            for i in 0..<400 {
                group.addTask {
                    guard case .number(let v) = try await script.call("sq", [.number(Double(i))]) else { return -1 }
                    return v
                }
            }
            var all: [Double] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.sorted() == (0..<400).map { Double($0 * $0) })
    }
}
