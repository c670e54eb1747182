import IoTCore
import IoTScripting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Suites that start worker processes run one test at a time, so that counting this process's
/// `iot-js-worker` children measures the test at hand.
@Suite(.serialized) enum WorkerTests {}

/// Each test makes its own engine and shuts it down, so no worker outlives its test.
extension WorkerTests {
    @Suite struct JavaScriptEngineTests {
        func engine(
            poolSize: Int = 2, memory: Int? = nil, timeLimit: Duration? = nil,
            isolation: JavaScriptEngine.Configuration.Isolation = .workerProcesses
        ) throws -> JavaScriptEngine {
            var c = JavaScriptEngine.Configuration()
            if let timeLimit { c.timeLimit = timeLimit }
            c.poolSize = poolSize
            c.isolation = isolation
            if let memory { c.memoryLimit = memory }
            return try JavaScriptEngine(configuration: c)
        }

        @Test(arguments: [JavaScriptEngine.Configuration.Isolation.workerProcesses, .inProcess])
        func valuesRoundTrip(_ isolation: JavaScriptEngine.Configuration.Isolation) async throws {
            let js = try engine(isolation: isolation)
            defer { js.shutdown() }
            let script = try js.compile(
                "function id(x) { return x; }\nfunction undef() { return undefined; }", name: "id")
            let values: [ScriptValue] = [
                .null, .bool(true), .bool(false), .number(42), .number(-7.25), .string(""), .string("grüße"),
                .array([.number(1), .string("two"), .bool(true), .null]),
                .object(["a": .number(1), "b": .object(["c": .array([.string("d")])])]),
                .array([]), .object([:]),
            ]
            for v in values {
                #expect(try await script.call("id", [v]) == v)
            }
            #expect(try await script.call("undef", []) == .null)
        }

        @Test func compileErrorsNameTheLine() async throws {
            let js = try engine()
            defer { js.shutdown() }
            let e = await expectError(.script) {
                _ = try js.compile("var a = 1;\nvar b = 2;\nvar c = = 3;\n", name: "bad")
            }
            #expect(e?.message.contains("SyntaxError") == true)
            #expect(e?.message.contains("(line 3)") == true, "\(String(describing: e))")
            let top = await expectError(.script) {
                _ = try js.compile("var x = 1;\nthrow new Error('top level failed');", name: "top")
            }
            #expect(top?.message == "Error: top level failed (line 2)", "\(String(describing: top))")
        }

        @Test func runtimeErrorsCarryMessageAndLine() async throws {
            let js = try engine()
            defer { js.shutdown() }
            let script = try js.compile(
                "function f() {\n  var t = null;\n  return t.field;\n}\nfunction g() { throw new RangeError('boom'); }\nfunction h() { throw 'plain'; }",
                name: "rt")
            let e = await expectError(.script) { _ = try await script.call("f", []) }
            #expect(e?.message.hasPrefix("TypeError") == true, "\(String(describing: e))")
            #expect(e?.message.hasSuffix("(line 3)") == true, "\(String(describing: e))")
            let g = await expectError(.script) { _ = try await script.call("g", []) }
            #expect(g?.message == "RangeError: boom (line 5)")
            let h = await expectError(.script) { _ = try await script.call("h", []) }
            #expect(h?.message == "plain")
            await expectError(.script) { _ = try await script.call("missing", []) }
        }

        @Test(arguments: [
            "return require('fs');",
            "return Duktape.modSearch('fs');",
            "return Duktape.version;",
            "return print('leak');",
            "return alert('leak');",
            "return process.exit(1);",
            "return new XMLHttpRequest();",
            "return __ciot_call = null, __ciot_call('escape');",
        ])
        func sandboxEscapesAreRefused(_ body: String) async throws {
            let js = try engine(poolSize: 1)
            defer { js.shutdown() }
            let script = try js.compile("'use strict';\nfunction escape() { \(body) }", name: "escape")
            await expectError(.script) { _ = try await script.call("escape", []) }
        }

        @Test func scriptsDoNotSeeEachOthersGlobals() async throws {
            let js = try engine(poolSize: 1)
            defer { js.shutdown() }
            let a = try js.compile("var x = 1; Array.prototype.push = null; function get() { return x; }", name: "a")
            let b = try js.compile(
                "function get() { return typeof x; }\nfunction push() { var l = []; l.push(1); return l; }", name: "b")
            #expect(try await a.call("get", []) == .number(1))
            #expect(try await b.call("get", []) == .string("undefined"))
            #expect(try await b.call("push", []) == .array([.number(1)]))
        }

        @Test func hugeAllocationsFailTheCallAndTheEngineServesOn() async throws {
            let js = try engine(poolSize: 1, memory: 16 << 20, timeLimit: .seconds(5))  // only the cap may end these
            defer { js.shutdown() }
            let script = try js.compile(
                """
                function big() { var s = 'x', a = []; for (var k = 0; k < 16; k++) { s += s; } for (var i = 0; i < 1e6; i++) { a.push(s + i); } return a.length; }
                function str() { var s = 'x'; while (true) { s = s + s; } }
                function buf() { return new ArrayBuffer(1 << 30).byteLength; }
                function ok() { return 'fine'; }
                """, name: "bomb")
            for f in ["big", "str", "buf"] {
                let e = await expectError(.script) { _ = try await script.call(f, []) }
                #expect(e?.message.contains("memory limit") == true, "\(f): \(String(describing: e))")
                #expect(try await script.call("ok", []) == .string("fine"))
            }
        }

        @Test(arguments: [
            "while (true) {}", "for (;;) { try { while (true) {} } catch (e) {} }",
            "function f() { return f(); } while (true) { try { f(); } catch (e) {} }",
        ])
        func runawayScriptsAreKilledWithinTheLimit(_ body: String) async throws {
            let js = try engine(poolSize: 1)
            defer { js.shutdown() }
            let script = try js.compile("function spin() { \(body) }\nfunction ok() { return 'fine'; }", name: "spin")
            #expect(try await script.call("ok", []) == .string("fine"))
            let before = workerChildren()
            let start = nowMillis()
            let e = await expectError(.timeout) { _ = try await script.call("spin", []) }
            let elapsed = nowMillis() - start
            // The worker is killed when the 100 ms limit passes; the upper bound is loose because waking up
            // also waits for a core on a loaded machine.
            #expect(elapsed >= 100 && elapsed < 1000, "took \(elapsed) ms")
            #expect(e?.message.contains("killed") == true)
            // The killed worker is gone (reaped in the background); the next call gets a fresh worker,
            // which loads the script again.
            #expect(
                await settledWorkerChildren { !$0.contains(where: before.contains) }.allSatisfy { !before.contains($0) }
            )
            #expect(try await script.call("ok", []) == .string("fine"))
        }

        @Test func runawayTopLevelFailsCompileWithTimeout() async throws {
            let js = try engine(poolSize: 1)
            defer { js.shutdown() }
            await expectError(.timeout) { _ = try js.compile("while (true) {}", name: "top") }
            let ok = try js.compile("function ok() { return 1; }", name: "ok")
            #expect(try await ok.call("ok", []) == .number(1))
        }

        @Test func manyConcurrentCallsShareTheWorkers() async throws {
            let js = try engine(poolSize: 3)
            defer { js.shutdown() }
            let script = try js.compile(
                "function sq(x) { return x * x; }\nfunction spin() { while (true) {} }", name: "sq")
            let results = try await withThrowingTaskGroup(of: Double.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        if i % 50 == 7 {
                            do { _ = try await script.call("spin", []) } catch let e as IoTError
                                where e.code == .timeout
                            { return -1 }
                        }
                        guard case .number(let v) = try await script.call("sq", [.number(Double(i))]) else { return -2 }
                        return v
                    }
                }
                var all: [Double] = []
                for try await r in group { all.append(r) }
                return all
            }
            #expect(results.filter { $0 == -1 }.count == 4)
            #expect(results.filter { $0 >= 0 }.count == 196)
            #expect(await settledWorkerChildren { $0.count <= 3 }.count <= 3)
        }

        @Test func shutdownStopsEveryWorker() async throws {
            let js = try engine(poolSize: 2)
            let script = try js.compile("function f() { return 1; }", name: "f")
            async let a = script.call("f", [])
            async let b = script.call("f", [])
            _ = try await (a, b)
            #expect(!workerChildren().isEmpty)
            js.shutdown()
            #expect(await settledWorkerChildren { $0.isEmpty }.isEmpty)
            await expectError(.shutdown) { _ = try await script.call("f", []) }
        }

        @Test func missingWorkerIsReported() async throws {
            var c = JavaScriptEngine.Configuration()
            c.workerPath = "/nonexistent/iot-js-worker"
            await expectError(.unavailable) { _ = try JavaScriptEngine(configuration: c) }
        }
    }
}
