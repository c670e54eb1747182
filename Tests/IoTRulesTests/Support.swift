import IoTCore

@testable import IoTRules

/// UTC milliseconds of a civil date-time.
func utc(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0) -> Int64 {
    Int64(Civil.days(year: y, month: mo, day: d)) * 86_400_000 + Int64(h * 3600 + mi * 60 + s) * 1000
}

/// A script engine for tests: "functions" are Swift closures picked by the source text.
struct FakeScriptEngine: ScriptEngine {
    typealias Function = @Sendable ([ScriptValue]) throws(IoTError) -> ScriptValue
    let language = "fake"
    let functions: [String: Function]

    func compile(_ source: String, name: String) throws(IoTError) -> any CompiledScript {
        if source.contains("syntax error") { throw IoTError(.script, "\(name):1: syntax error") }
        return Compiled(functions: functions)
    }

    struct Compiled: CompiledScript {
        let functions: [String: Function]
        func call(_ function: String, _ arguments: [ScriptValue]) async throws(IoTError) -> ScriptValue {
            guard let f = functions[function] else {
                throw IoTError(.script, "attempt to call a nil value (global '\(function)')")
            }
            return try f(arguments)
        }
    }
}

extension ScriptValue {
    subscript(_ key: String) -> Double? {
        guard case .object(let o) = self, case .number(let n)? = o[key] else { return nil }
        return n
    }
}
