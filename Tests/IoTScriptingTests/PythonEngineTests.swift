import Foundation
import IoTCore
import IoTScripting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 20, item 9: Python parse scripts in killable, sandboxed worker processes, with the `parse(msg)`
/// contract of the other languages. Each test makes its own engine and shuts it down.
extension WorkerTests {
    @Suite struct PythonEngineTests {
        func engine(poolSize: Int = 1, memory: Int? = nil, timeLimit: Duration = .seconds(2)) throws -> PythonEngine {
            var c = PythonEngine.Configuration()
            c.poolSize = poolSize
            c.timeLimit = timeLimit
            if let memory { c.memoryLimit = memory }
            return try PythonEngine(configuration: c)
        }

        @Test func valuesRoundTripAndErrorsNameTheLine() async throws {
            let py = try engine()
            defer { py.shutdown() }
            let script = try py.compile(
                "def ident(x):\n    return x\n\ndef pair():\n    return (1, 'two')\n\ndef boom():\n    x = None\n    return x.field\n",
                name: "rt")
            let values: [ScriptValue] = [
                .null, .bool(true), .bool(false), .number(42), .number(-7.25), .string(""), .string("grüße"),
                .array([.number(1), .string("two"), .bool(true), .null]),
                .object(["a": .number(1), "b": .object(["c": .array([.string("d")])])]), .array([]), .object([:]),
            ]
            for v in values {
                #expect(try await script.call("ident", [v]) == v)
            }
            #expect(try await script.call("pair", []) == .array([.number(1), .string("two")]))
            let e = await expectError(.script) { _ = try await script.call("boom", []) }
            #expect(e?.message.hasPrefix("AttributeError") == true, "\(String(describing: e))")
            #expect(e?.message.hasSuffix("(line 9)") == true, "\(String(describing: e))")
            let syntax = await expectError(.script) { _ = try py.compile("x = 1\ny = = 2\n", name: "bad") }
            #expect(syntax?.message.contains("SyntaxError") == true && syntax?.message.contains("(line 2)") == true)
            await expectError(.script) { _ = try await script.call("missing", []) }
        }

        @Test func parseScriptsFollowTheParseContract() async throws {
            let py = try engine()
            defer { py.shutdown() }
            let parser = try PythonParser(
                source: """
                    import json

                    def parse(msg):
                        d = json.loads(msg["payload"])
                        return [{"identificationCode": d["sn"], "time": d["ts"], "values": {"temp": d["t"], "fw": "007"}},
                                {"values": {"seen": msg["transport"]}}]
                    """, name: "thermo", engine: py)
            let records = try parser.parse(
                InboundMessage(
                    transport: "mqtt", deviceUID: "gw-1", text: #"{"sn": "t-9", "ts": 1700000000000, "t": 21.5}"#))
            #expect(records.count == 2)
            #expect(records[0].identificationCode == "t-9" && records[0].time == 1_700_000_000_000)
            #expect(records[0].values["temp"] == .number(21.5) && records[0].values["fw"] == .text("007"))
            #expect(records[1].deviceUID == "gw-1" && records[1].values["seen"] == .text("mqtt"))
            let bad = try PythonParser(source: "def parse(msg):\n    return 1 / 0\n", name: "zero", engine: py)
            do {
                _ = try bad.parse(InboundMessage(transport: "http", deviceUID: "d", text: "{}"))
                Issue.record("a failing script parsed")
            } catch {
                #expect(error.code == .malformedPayload && error.message.contains("ZeroDivisionError"), "\(error)")
            }
        }

        @Test func aRunawayCallIsKilledAtItsLimitAndTheNextCallWorks() async throws {
            let py = try engine(timeLimit: .milliseconds(300))
            defer { py.shutdown() }
            let script = try py.compile(
                "def spin():\n    while True:\n        pass\n\ndef ok():\n    return 1\n", name: "spin")
            let started = ContinuousClock.now
            await expectError(.timeout) { _ = try await script.call("spin", []) }
            #expect(ContinuousClock.now - started < .seconds(3), "killed near its limit")
            #expect(try await script.call("ok", []) == .number(1), "a new worker takes the next call")
        }

        @Test(arguments: [
            ("open", "def f():\n    return open('/tmp/iot-py-escape', 'w')\n"),
            ("import os", "def f():\n    import os\n    return os.getcwd()\n"),
            ("import socket", "def f():\n    import socket\n    return 1\n"),
            (
                "escaped open",
                "import json\ndef f():\n    b = json.dumps.__globals__['__builtins__']\n    return b['open']('/tmp/iot-py-escape', 'w')\n"
            ),
            (
                "escaped socket",
                "import json\ndef f():\n    i = json.dumps.__globals__['__builtins__']['__import__']\n    s = i('socket').socket()\n    return s.connect(('127.0.0.1', 22))\n"
            ),
            (
                "escaped system",
                "import json\ndef f():\n    i = json.dumps.__globals__['__builtins__']['__import__']\n    return i('os').system('touch /tmp/iot-py-escape')\n"
            ),
        ])
        func theSandboxRefusesFilesNetworkAndProcesses(_ name: String, _ source: String) async throws {
            unlink("/tmp/iot-py-escape")
            let py = try engine()
            defer { py.shutdown() }
            let script = try py.compile(source, name: "escape")
            do {
                let result = try await script.call("f", [])
                Issue.record("\(name) was allowed: \(result)")
            } catch {
                #expect(error.code == .script, "\(name): \(error)")
            }
            #expect(access("/tmp/iot-py-escape", F_OK) != 0, "\(name) wrote a file")
        }

        @Test func aScriptOverItsMemoryLimitFailsAndTheNextCallWorks() async throws {
            let py = try engine(memory: 32 << 20)
            defer { py.shutdown() }
            let script = try py.compile(
                "def hog():\n    return len('x' * (256 << 20))\n\ndef small():\n    return len('x' * 1000)\n",
                name: "hog")
            let e = await expectError(.script) { _ = try await script.call("hog", []) }
            #expect(e?.message.contains("MemoryError") == true, "\(String(describing: e))")
            #expect(try await script.call("small", []) == .number(1_000))
        }

        @Test func theFactoryCompilesPythonAndItsEngineServesRules() async throws {
            let factory = ScriptParserFactory()
            #expect(factory.languages.contains("python"))
            let parser = try factory.makeParser(
                ScriptSource(
                    name: "p", language: "python", source: "def parse(msg):\n    return {\"v\": 1}\n", updatedAt: 0))
            #expect(
                try parser.parse(InboundMessage(transport: "t", deviceUID: "d", text: "x"))[0].values["v"] == .number(1)
            )
            let condition = try factory.pythonOnFirstUse.compile("def check(p):\n    return p['t'] > 30\n", name: "c")
            #expect(try await condition.call("check", [.object(["t": .number(31)])]) == .bool(true))
            try factory.pythonEngine().shutdown()
        }
    }
}
