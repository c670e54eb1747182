/// Turns script sources into parsers. `IoTScripting.ScriptParserFactory` is the built-in one (Lua and
/// JavaScript); an integrator can supply another language.
///
/// ## Implementing a parser factory
/// - Compile in ``makeParser(_:)``: a syntax error throws ``IoTError/Code/script`` with the
///   interpreter's message and line, so a bad script is refused when it is saved, not at the first
///   message.
/// - Throw ``IoTError/Code/invalidArgument`` for a language not in ``languages``.
public protocol ParserFactory: Sendable {
    /// The languages this factory compiles, e.g. `["javascript", "lua"]`.
    var languages: [String] { get }
    /// Compiles `script` into a parser named `script.name`.
    func makeParser(_ script: ScriptSource) throws(IoTError) -> any Parser
}

/// Script parsers added, changed and removed at run time: compiles them with a ``ParserFactory``,
/// keeps them in a ``ScriptStore`` and registers them in the ``ParserRegistry`` the ``Ingestor``
/// reads, so the next message of a product naming the parser goes through the new version.
///
/// ```swift
/// let catalog = ParserCatalog(registry: parsers, factory: ScriptParserFactory(lua: lua), store: scripts, clock: clock)
/// try await catalog.load()                                     // at start: what was saved before
/// try await catalog.save(ScriptSource(name: "csv", language: "lua", source: csvScript))
/// ```
public final class ParserCatalog: Sendable {
    /// The registry scripts are registered in.
    public let registry: ParserRegistry
    let factory: any ParserFactory
    let store: any ScriptStore
    let clock: any IoTClock
    /// Names that are not scripts and cannot be replaced or removed (the registry's parsers at creation).
    public let builtInNames: Set<String>

    /// Creates a catalog over `registry`; the parsers registered now (JSON, SenML) become built-in names.
    public init(registry: ParserRegistry, factory: any ParserFactory, store: any ScriptStore, clock: any IoTClock) {
        self.registry = registry
        self.factory = factory
        self.store = store
        self.clock = clock
        self.builtInNames = Set(registry.names)
    }

    /// The languages the factory compiles.
    public var languages: [String] { factory.languages }

    /// Compiles and registers every stored script. A script that no longer compiles (an engine
    /// upgrade) is skipped and returned with its error, so the rest still load.
    @discardableResult
    public func load() async throws -> [(name: String, error: IoTError)] {
        var failures: [(name: String, error: IoTError)] = []
        for script in try await store.scripts() {
            do {
                registry.register(try factory.makeParser(script), as: script.name)
            } catch {
                failures.append((script.name, error))
            }
        }
        return failures
    }

    /// Compiles `script`, stores it and registers it, replacing a script of the same name. Nothing
    /// changes when it does not compile.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` for an empty or built-in name or an unknown
    ///   language, ``IoTError/Code/script`` for a script that does not compile,
    ///   ``IoTError/Code/storage`` when the store fails.
    /// - Returns: the script as stored (with its save time).
    @discardableResult
    public func save(_ script: ScriptSource) async throws(IoTError) -> ScriptSource {
        try validateName(script.name)
        guard factory.languages.contains(script.language) else {
            throw IoTError(
                .invalidArgument,
                "unknown script language \"\(script.language)\"; use one of: \(factory.languages.joined(separator: ", "))"
            )
        }
        let parser = try factory.makeParser(script)
        var stored = script
        stored.updatedAt = clock.now()
        do {
            try await store.saveScript(stored)
        } catch {
            throw IoTError(.storage, "the script \"\(script.name)\" could not be stored: \(error)")
        }
        registry.register(parser, as: script.name)
        return stored
    }

    /// Removes a script from the store and the registry; returns whether it existed. Messages of
    /// products still naming it are rejected until the product names another parser.
    @discardableResult
    public func remove(named name: String) async throws(IoTError) -> Bool {
        try validateName(name)
        let existed: Bool
        do {
            existed = try await store.deleteScript(named: name)
        } catch {
            throw IoTError(.storage, "the script \"\(name)\" could not be deleted: \(error)")
        }
        return registry.remove(name) || existed
    }

    /// Reads the script `name` from the store again (another process on the same store saved or deleted it):
    /// compiles and registers it, or removes it from the registry when the store no longer has it.
    ///
    /// - Throws: ``IoTError/Code/script`` when the stored script does not compile here (the registry keeps what it
    ///   had), ``IoTError/Code/storage`` when the store fails.
    public func reload(named name: String) async throws(IoTError) {
        guard !builtInNames.contains(name) else { return }
        guard let script = try await script(named: name) else {
            _ = registry.remove(name)
            return
        }
        registry.register(try factory.makeParser(script), as: name)
    }

    /// Every stored script, sorted by name.
    public func scripts() async throws(IoTError) -> [ScriptSource] {
        do { return try await store.scripts() } catch {
            throw IoTError(.storage, "the scripts could not be read: \(error)")
        }
    }

    /// The stored script named `name`, or `nil`.
    public func script(named name: String) async throws(IoTError) -> ScriptSource? {
        do { return try await store.script(named: name) } catch {
            throw IoTError(.storage, "the script \"\(name)\" could not be read: \(error)")
        }
    }

    private func validateName(_ name: String) throws(IoTError) {
        guard !name.isEmpty, name.count <= 64,
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else {
            throw IoTError(
                .invalidArgument,
                "script name \"\(name)\" is not valid; use 1 to 64 ASCII letters, digits, '-', '_' or '.'")
        }
        guard !builtInNames.contains(name) else {
            throw IoTError(
                .invalidArgument,
                "\"\(name)\" is a built-in parser and cannot be replaced or removed; pick another name")
        }
    }
}
