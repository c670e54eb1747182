/// A value passed to and from scripts.
public indirect enum ScriptValue: Sendable, Hashable {
    /// `nil` / `null` / `undefined`.
    case null
    /// A boolean.
    case bool(Bool)
    /// A number.
    case number(Double)
    /// A string.
    case string(String)
    /// A list.
    case array([ScriptValue])
    /// A table / object with string keys.
    case object([String: ScriptValue])
}

/// Runs scripts: Lua and JavaScript in `IoTScripting`, or another language an integrator brings.
///
/// ## Implementing a script engine
/// - ``compile(_:name:)`` checks the source once and returns a reusable ``CompiledScript``; a syntax error
///   throws ``IoTError/Code/script`` naming the line.
/// - Scripts are sandboxed: no file, process, network, module or debug access; a memory cap; a time
///   budget after which a call fails with ``IoTError/Code/timeout`` and the engine keeps serving.
/// - An error inside a script never unwinds through Swift frames.
public protocol ScriptEngine: Sendable {
    /// The language (`lua`, `javascript`).
    var language: String { get }
    /// Compiles a script.
    func compile(_ source: String, name: String) throws(IoTError) -> any CompiledScript
}

/// A compiled script whose global functions can be called many times, from many tasks.
public protocol CompiledScript: Sendable {
    /// Calls a global function with arguments and returns its result.
    func call(_ function: String, _ arguments: [ScriptValue]) async throws(IoTError) -> ScriptValue
}
