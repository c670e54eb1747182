public import IoTCore
import Synchronization

/// The built-in ``IoTCore/ParserFactory``: compiles `lua` scripts into ``LuaScriptParser``s and
/// `javascript` scripts into ``JavaScriptParser``s (either convention: `parse(msg)` or go-iot-platform's
/// `main(nc)`).
///
/// The JavaScript engine, with its worker processes, is created on the first JavaScript script.
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

    /// Creates a factory compiling Lua on `lua` and JavaScript on an engine made with
    /// `javascript` when first needed.
    public init(lua: LuaEngine = LuaEngine(), javascript: JavaScriptEngine.Configuration = .init()) {
        self.lua = lua
        self.javascriptConfiguration = javascript
    }

    /// Creates a factory on engines that already exist.
    public init(lua: LuaEngine, javascriptEngine: JavaScriptEngine) {
        self.lua = lua
        self.javascriptConfiguration = javascriptEngine.configuration
        self.javascript.withLock { $0 = javascriptEngine }
    }

    public var languages: [String] { ["javascript", "lua"] }

    public func makeParser(_ script: ScriptSource) throws(IoTError) -> any Parser {
        switch script.language {
        case "lua":
            return try LuaScriptParser(source: script.source, name: script.name, engine: lua)
        case "javascript":
            return try JavaScriptParser(source: script.source, name: script.name, engine: javascriptEngine())
        default:
            throw IoTError(
                .invalidArgument,
                "unknown script language \"\(script.language)\"; use one of: \(languages.joined(separator: ", "))")
        }
    }

    /// The JavaScript engine, created on first use.
    public func javascriptEngine() throws(IoTError) -> JavaScriptEngine {
        if let engine = javascript.withLock({ $0 }) { return engine }
        let created = try JavaScriptEngine(configuration: javascriptConfiguration)
        // Two first callers may both create one; the first stored wins and the other is dropped.
        return javascript.withLock { engine in
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
    public var javascriptOnFirstUse: any ScriptEngine { JavaScriptOnFirstUse(factory: self) }
}

/// ``ScriptParserFactory/javascriptOnFirstUse``.
private struct JavaScriptOnFirstUse: ScriptEngine {
    let factory: ScriptParserFactory

    var language: String { "javascript" }

    func compile(_ source: String, name: String) throws(IoTError) -> any CompiledScript {
        try factory.javascriptEngine().compile(source, name: name)
    }
}
