import Synchronization

/// A compiled script's source, loaded lazily into each interpreter that runs it (a Lua state, a Duktape
/// heap, a JavaScript worker process).
struct EngineScript: Sendable {
    /// Unique in the engine; what an interpreter keys its loaded copy by.
    let id: UInt64
    /// The script's name, for error messages.
    let name: String
    /// The script text.
    let source: String
}

/// An engine's script ids, and those of its scripts that are no longer referenced: each interpreter unloads
/// them on its next use, without a lock held across interpreters.
final class RetiredScripts: Sendable {
    private let nextID = Atomic<UInt64>(1)
    private let generation = Atomic<Int>(0)
    private let retired = Mutex<Set<UInt64>>([])

    /// A new script of `name` with the next id.
    func script(name: String, source: String) -> EngineScript {
        EngineScript(id: nextID.wrappingAdd(1, ordering: .relaxed).oldValue, name: name, source: source)
    }

    /// Forgets a script that is no longer referenced.
    func retire(_ id: UInt64) {
        retired.withLock { _ = $0.insert(id) }
        generation.add(1, ordering: .releasing)
    }

    /// Brings an interpreter up to date: when scripts were retired since `seen` (the generation it caught up
    /// with), calls `unload` with every retired id and moves `seen` forward.
    func catchUp<Failure: Error>(
        _ seen: inout Int, unload: (Set<UInt64>) throws(Failure) -> Void
    ) throws(Failure) {
        let now = generation.load(ordering: .acquiring)
        guard now != seen else { return }
        try unload(retired.withLock { $0 })
        seen = now
    }
}
