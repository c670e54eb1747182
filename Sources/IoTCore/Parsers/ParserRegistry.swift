import Synchronization

/// Parsers by name, so a product can name the parser for its devices' messages (``Product/parser``):
/// `json`, `senml`, or a script parser registered at run time.
///
/// ```swift
/// let parsers = ParserRegistry()                      // json and senml
/// parsers.register(try LuaScriptParser(source: csvScript, name: "csv"))
/// let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry, parsers: parsers)
/// // devices of a product with `parser: "csv"` now go through the Lua script, whatever transport they use
/// ```
public final class ParserRegistry: Sendable {
    private let parsers: Mutex<[String: any Parser]>

    /// Creates a registry holding `parsers` under their ``Parser/name``s (JSON and SenML by default).
    public init(_ parsers: [any Parser] = [JSONParser(), SenMLParser()]) {
        self.parsers = Mutex(Dictionary(parsers.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last }))
    }

    /// Adds or replaces a parser under `name` (its ``Parser/name`` by default).
    public func register(_ parser: any Parser, as name: String? = nil) {
        let key = name ?? parser.name
        parsers.withLock { $0[key] = parser }
    }

    /// Removes a parser; returns whether it was there.
    @discardableResult
    public func remove(_ name: String) -> Bool {
        parsers.withLock { $0.removeValue(forKey: name) != nil }
    }

    /// The parser registered under `name`, or `nil`.
    public func parser(named name: String) -> (any Parser)? {
        parsers.withLock { $0[name] }
    }

    /// The registered names, sorted.
    public var names: [String] { parsers.withLock { $0.keys.sorted() } }
}

/// A parser that forwards to the parser registered under ``name`` at the time of each message, so a
/// listener configured with a script parser's name follows it when it is added or replaced at run time.
/// A message arriving while no parser has that name is rejected with ``IoTError/Code/invalidArgument``.
public struct RegistryParser: Parser {
    /// The registered name this parser forwards to.
    public let name: String
    let registry: ParserRegistry

    /// Creates a parser forwarding to `registry`'s parser named `name`.
    public init(name: String, registry: ParserRegistry) {
        self.name = name
        self.registry = registry
    }

    public func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
        guard let parser = registry.parser(named: name) else {
            throw IoTError(
                .invalidArgument,
                "no parser is registered as '\(name)'; add it (POST /api/v1/parsers or iotd.yaml parsers) or configure another"
            )
        }
        return try parser.parse(message)
    }
}
