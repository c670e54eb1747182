public import IoTCore
import Synchronization

/// A ``ScriptStore`` in memory.
///
/// ```swift
/// let catalog = ParserCatalog(registry: ParserRegistry(), factory: factory, store: InMemoryScriptStore(),
///                             clock: ManualClock())
/// ```
public final class InMemoryScriptStore: ScriptStore {
    private let state = Mutex<[String: ScriptSource]>([:])

    /// Creates an empty store.
    public init() {}

    public func saveScript(_ script: ScriptSource) async throws {
        state.withLock { $0[script.name] = script }
    }

    public func scripts() async throws -> [ScriptSource] {
        state.withLock { $0.values.sorted { $0.name < $1.name } }
    }

    public func script(named name: String) async throws -> ScriptSource? {
        state.withLock { $0[name] }
    }

    public func deleteScript(named name: String) async throws -> Bool {
        state.withLock { $0.removeValue(forKey: name) != nil }
    }
}
