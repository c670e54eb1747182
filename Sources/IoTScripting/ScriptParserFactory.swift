public import IoTCore
import Synchronization

/// The built-in ``IoTCore/ParserFactory``: compiles `lua` scripts into ``LuaScriptParser``s, `javascript`
/// scripts into ``JavaScriptParser``s (either convention: `parse(msg)` or go-iot-platform's `main(nc)`) and
/// `python` scripts into ``PythonParser``s.
///
/// The JavaScript and Python engines, with their worker processes, are created on the first script of their
/// language.
///
/// ```swift
/// let factory = ScriptParserFactory(lua: LuaEngine())
/// let catalog = ParserCatalog(registry: parsers, factory: factory, store: SQLiteScriptStore(storage: storage),
///                             clock: SystemClock())
/// ```
public final class ScriptParserFactory: ParserFactory {
    let lua: LuaEngine
    private let javascriptConfiguration: JavaScriptEngine.Configuration
    private let javascript = Mutex<JavaScriptEngine?>(nil)
    private let pythonConfiguration: PythonEngine.Configuration
    private let python = Mutex<PythonEngine?>(nil)

    /// Creates a factory compiling Lua on `lua`, and JavaScript and Python on engines made with `javascript`
    /// and `python` when first needed.
    public init(
        lua: LuaEngine = LuaEngine(), javascript: JavaScriptEngine.Configuration = .init(),
        python: PythonEngine.Configuration = .init()
    ) {
        self.lua = lua
        self.javascriptConfiguration = javascript
        self.pythonConfiguration = python
    }

    /// Creates a factory on engines that already exist (Python's is made when first needed).
    public init(lua: LuaEngine, javascriptEngine: JavaScriptEngine) {
        self.lua = lua
        self.javascriptConfiguration = javascriptEngine.configuration
        self.pythonConfiguration = .init()
        self.javascript.withLock { $0 = javascriptEngine }
    }

    public var languages: [String] { ["javascript", "lua", "python"] }

    public func makeParser(_ script: ScriptSource) throws(IoTError) -> any Parser {
        switch script.language {
        case "lua":
            return try LuaScriptParser(source: script.source, name: script.name, engine: lua)
        case "javascript":
            return try JavaScriptParser(source: script.source, name: script.name, engine: javascriptEngine())
        case "python":
            return try PythonParser(source: script.source, name: script.name, engine: pythonEngine())
        default:
            throw IoTError(
                .invalidArgument,
                "unknown script language \"\(script.language)\"; use one of: \(languages.joined(separator: ", "))")
        }
    }

    /// The JavaScript engine, created on first use.
    public func javascriptEngine() throws(IoTError) -> JavaScriptEngine {
        try Self.onFirstUse(javascript) { () throws(IoTError) in
            try JavaScriptEngine(configuration: javascriptConfiguration)
        }
    }

    /// The Python engine, created on first use.
    public func pythonEngine() throws(IoTError) -> PythonEngine {
        try Self.onFirstUse(python) { () throws(IoTError) in try PythonEngine(configuration: pythonConfiguration) }
    }

    /// The engine in `slot`, made with `make` when there is none. Two first callers may both make one; the
    /// first stored wins and the other is dropped.
    private static func onFirstUse<Engine: Sendable>(
        _ slot: borrowing Mutex<Engine?>, _ make: () throws(IoTError) -> Engine
    ) throws(IoTError) -> Engine {
        if let engine = slot.withLock({ $0 }) { return engine }
        let created = try make()
        return slot.withLock { engine in
            if let engine { return engine }
            engine = created
            return created
        }
    }
}

extension ScriptParserFactory {
    /// The factory's JavaScript engine as a ``IoTCore/ScriptEngine`` for rule conditions and statistics
    /// calculations, made on the first script (so a platform whose scripts are all Lua starts no JavaScript
    /// worker), and shared with the JavaScript parsers.
    public var javascriptOnFirstUse: any ScriptEngine { EngineOnFirstUse(factory: self, language: "javascript") }

    /// The factory's Python engine, as ``javascriptOnFirstUse`` is its JavaScript engine.
    public var pythonOnFirstUse: any ScriptEngine { EngineOnFirstUse(factory: self, language: "python") }
}

/// ``ScriptParserFactory/javascriptOnFirstUse`` and ``ScriptParserFactory/pythonOnFirstUse``.
private struct EngineOnFirstUse: ScriptEngine {
    let factory: ScriptParserFactory
    let language: String

    func compile(_ source: String, name: String) throws(IoTError) -> any CompiledScript {
        language == "python"
            ? try factory.pythonEngine().compile(source, name: name)
            : try factory.javascriptEngine().compile(source, name: name)
    }
}
