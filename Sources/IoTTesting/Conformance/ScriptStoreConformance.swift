public import IoTCore

/// The conformance suite of ``ScriptStore``: every line of its contract as a check.
///
/// ```swift
/// @Test(arguments: ScriptStoreConformance.checks)
/// func scripts(_ check: ConformanceCheck<any ScriptStore>) async throws {
///     try await check.run(InMemoryScriptStore())
/// }
/// ```
public enum ScriptStoreConformance {
    /// The checks.
    public static let checks: [ConformanceCheck<any ScriptStore>] = [
        ConformanceCheck("scripts round-trip every field, sorted by name") { store in
            let lua = ScriptSource(
                name: "csv", language: "lua", source: "function parse(msg)\n  return {} -- ünïcode ✓\nend",
                updatedAt: 1_700_000_000_123)
            let js = ScriptSource(name: "a.js-1_x", language: "javascript", source: "", updatedAt: 0)
            try await store.saveScript(lua)
            try await store.saveScript(js)
            try conformEqual(try await store.scripts(), [js, lua], "stored scripts")
            try conformEqual(try await store.script(named: "csv"), lua, "one script")
            try conformEqual(try await store.script(named: "none"), nil, "unknown name")
        },
        ConformanceCheck("save replaces by name") { store in
            try await store.saveScript(ScriptSource(name: "p", language: "lua", source: "v1", updatedAt: 1))
            let v2 = ScriptSource(name: "p", language: "javascript", source: "v2", updatedAt: 2)
            try await store.saveScript(v2)
            try conformEqual(try await store.scripts(), [v2], "replaced script")
        },
        ConformanceCheck("delete returns whether the script was there") { store in
            try await store.saveScript(ScriptSource(name: "p", language: "lua", source: "x", updatedAt: 1))
            try conformEqual(try await store.deleteScript(named: "p"), true, "first delete")
            try conformEqual(try await store.deleteScript(named: "p"), false, "second delete")
            try conformEqual(try await store.scripts(), [], "nothing left")
        },
    ]
}
