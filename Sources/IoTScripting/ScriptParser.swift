public import IoTCore

/// A ``Parser`` written in Lua: the script defines `function parse(msg)`.
///
/// `msg` has `payload` (the bytes as a Lua string), `transport`, and when known `topic`, `device` (the
/// connected unit's uid) and `receivedAt` (UTC ms). `parse` returns a list of records, or one record:
/// `{device = …, identificationCode = …, time = …, values = {name = value, …}}`. `device` defaults to the
/// message's device, `identificationCode` to `device`, `time` (ms) to server time. A table that is neither
/// a list nor a record (it has no `values`), such as `{temp = 21.5, hum = 40}`, is the values of the
/// message's device at server time: every key is a signal name there, `time` and `device` included.
///
/// ```swift
/// let parser = try LuaScriptParser(source: """
///     function parse(msg)
///       local t = tonumber(msg.payload:match('"temp":(-?[%d.]+)'))
///       return { { values = { temp = t } } }
///     end
///     """, name: "thermo")
/// let records = try parser.parse(InboundMessage(transport: "mqtt", deviceUID: "t-1", text: #"{"temp":21.5}"#))
/// ```
///
/// A script error or a result of the wrong shape rejects that message with
/// ``IoTError/Code/malformedPayload`` (as the ``Parser`` contract asks) and the script's message and line,
/// e.g. `script 'thermo': attempt to index a nil value (line 3)`; a runaway script fails with
/// ``IoTError/Code/timeout``. The next message is unaffected. Parsing runs on the calling thread, for at
/// most the engine's ``LuaEngine/Configuration/timeLimit``.
public struct LuaScriptParser: Parser {
    /// The parser's name, for configuration and counters.
    public let name: String
    let script: LuaCompiledScript

    /// Compiles the script on `engine` (a new engine with default limits when omitted).
    public init(source: String, name: String = "lua", engine: LuaEngine = LuaEngine()) throws(IoTError) {
        self.name = name
        script = try engine.compileLua(source, name: name)
    }

    /// Runs `parse(msg)` and returns its records.
    public func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
        let source = script.source
        do {
            return try script.engine.withState { (state) throws(IoTError) in try state.parse(message, with: source) }
        } catch {
            throw rejection(error, script: name)
        }
    }
}

/// A ``Parser`` written in JavaScript: either `function parse(msg)` in the same form as
/// ``LuaScriptParser`` (with `payload` as a string), or an unchanged go-iot-platform script.
///
/// go-iot-platform scripts define ES5 `function main(nc)`, receive the payload string and return
/// `[{Time, DeviceUid, IdentificationCode, DataRows: [{Name, Value}], Nc}]`. `Value` strings stay text and
/// the ingestor converts each to its signal's type (`"007"` stays `"007"` for a text signal); `Time`
/// below 1e11 is seconds, otherwise milliseconds; an empty `DeviceUid` means the message's device.
///
/// ```swift
/// let js = try JavaScriptEngine()
/// let parser = try JavaScriptParser(source: """
///     function main(nc) {
///       var d = JSON.parse(nc);
///       return [{ Time: d.ts, DeviceUid: "", IdentificationCode: d.sn,
///                 DataRows: [{ Name: "temp", Value: String(d.t) }], Nc: nc }];
///     }
///     """, name: "go-thermo", engine: js)
/// ```
///
/// Errors are reported as by ``LuaScriptParser``.
///
/// `parse(_:)` blocks its calling thread on the worker's socket for at most the engine's
/// ``JavaScriptEngine/Configuration/timeLimit`` (100 ms by default): plain blocking syscalls, so it
/// cannot deadlock when called from async code, but it does hold a cooperative thread for that long in
/// the worst case.
public struct JavaScriptParser: Parser {
    /// Which function the script defines.
    public enum Convention: Sendable, Hashable {
        /// `parse(msg)` if the source declares `function parse(`, else `main(nc)`.
        case automatic
        /// `function parse(msg)` returning `[{device, identificationCode, time, values}]`.
        case parse
        /// go-iot-platform's `function main(nc)`.
        case goIoTPlatform
    }

    /// The parser's name, for configuration and counters.
    public let name: String
    /// The convention in use (never ``Convention/automatic``).
    public let convention: Convention
    let script: JavaScriptCompiledScript

    /// Compiles the script on `engine`.
    public init(
        source: String, name: String = "javascript", convention: Convention = .automatic, engine: JavaScriptEngine
    )
        throws(IoTError)
    {
        self.name = name
        switch convention {
        case .automatic:
            let declaresParse = source.contains(/function\s+parse\s*\(/)
            let declaresMain = source.contains(/function\s+main\s*\(/)
            self.convention = declaresMain && !declaresParse ? .goIoTPlatform : .parse
        default:
            self.convention = convention
        }
        script = try engine.compileJavaScript(source, name: name)
    }

    /// Runs the script and returns its records.
    public func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
        do {
            return try run(message)
        } catch {
            throw rejection(error, script: name)
        }
    }

    private func run(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
        let payload = String(decoding: message.payload, as: UTF8.self)
        switch convention {
        case .goIoTPlatform:
            let result = try script.callNow("main", [.string(payload)])
            return try ScriptRecords.goIoTPlatform(result, message: message, script: name)
        default:
            let result = try script.callNow("parse", [ScriptRecords.argument(message)])
            return try ScriptRecords.records(result, message: message, script: name)
        }
    }
}

/// A script's failure as a parser's rejection: script errors become ``IoTError/Code/malformedPayload``
/// naming the script; timeouts and the rest keep their code.
func rejection(_ error: IoTError, script: String) -> IoTError {
    guard error.code == .script else { return error }
    return IoTError(.malformedPayload, "script '\(script)': \(error.message)")
}
