/// The source of a script parser: what the management API accepts and a ``ScriptStore`` keeps.
///
/// ```swift
/// let csv = ScriptSource(name: "csv", language: "lua", source: """
///     function parse(msg)
///       local t, h = msg.payload:match("([^;]+);([^;]+)")
///       return {{values = {temperature = tonumber(t), humidity = tonumber(h)}}}
///     end
///     """)
/// ```
public struct ScriptSource: Sendable, Hashable, Codable {
    /// The name products use in ``Product/parser``.
    public var name: String
    /// The language: `lua` or `javascript` with the built-in ``ParserFactory`` of `IoTScripting`.
    public var language: String
    /// The script text.
    public var source: String
    /// When it was saved (UTC ms); `0` when not yet saved.
    public var updatedAt: Int64

    /// Creates a script source.
    public init(name: String, language: String, source: String, updatedAt: Int64 = 0) {
        self.name = name
        self.language = language
        self.source = source
        self.updatedAt = updatedAt
    }
}

/// Where script parsers added at run time are kept, so that they come back after a restart.
///
/// Scripts are platform-wide, like the ``ParserRegistry`` they are loaded into.
///
/// ## Implementing a script store
/// - ``saveScript(_:)`` inserts or replaces by name, with every field as given.
/// - ``scripts()`` returns every script, sorted by name; ``script(named:)`` one or `nil`.
/// - ``deleteScript(named:)`` returns whether a script was there.
/// - Pass `IoTTesting.ScriptStoreConformance` to check an implementation.
public protocol ScriptStore: Sendable {
    /// Inserts or replaces a script by name.
    func saveScript(_ script: ScriptSource) async throws
    /// Every stored script, sorted by name.
    func scripts() async throws -> [ScriptSource]
    /// The script stored under `name`, or `nil`.
    func script(named name: String) async throws -> ScriptSource?
    /// Deletes a script; returns whether it was there.
    func deleteScript(named name: String) async throws -> Bool
}
