public import IoTCore

/// The conformance suite of ``DefinitionStore``: every line of its contract as a check.
///
/// ```swift
/// @Test(arguments: DefinitionStoreConformance.checks)
/// func definitions(_ check: ConformanceCheck<any DefinitionStore>) async throws {
///     try await check.run(InMemoryDefinitionStore())
/// }
/// ```
public enum DefinitionStoreConformance {
    static let acme = AccessScope.tenant("acme")
    static let globex = AccessScope.tenant("globex")

    /// The checks.
    public static let checks: [ConformanceCheck<any DefinitionStore>] = [
        ConformanceCheck("definitions round-trip their bytes, sorted by id, one kind at a time") { store in
            let rule = Array(#"{"kind":"range","id":"too-warm","max":30,"note":"ünïcode ✓"}"#.utf8)
            try await store.saveDefinition(acme, kind: "alarm-rule", id: "too-warm", body: rule)
            try await store.saveDefinition(acme, kind: "alarm-rule", id: "a-first", body: [0, 255, 1])
            try await store.saveDefinition(acme, kind: "statistics-job", id: "too-warm", body: [7])
            try conformEqual(
                try await store.definitions(acme, kind: "alarm-rule"),
                [StoredDefinition(id: "a-first", body: [0, 255, 1]), StoredDefinition(id: "too-warm", body: rule)],
                "rules")
            try conformEqual(
                try await store.definitions(acme, kind: "statistics-job"),
                [StoredDefinition(id: "too-warm", body: [7])],
                "jobs: same id, other kind")
            try conformEqual(try await store.definitions(acme, kind: "none"), [], "unknown kind")
        },
        ConformanceCheck("save replaces by (kind, id); delete returns whether it was there") { store in
            try await store.saveDefinition(acme, kind: "k", id: "x", body: [1])
            try await store.saveDefinition(acme, kind: "k", id: "x", body: [2])
            try conformEqual(
                try await store.definitions(acme, kind: "k"), [StoredDefinition(id: "x", body: [2])], "replaced")
            try conformEqual(try await store.deleteDefinition(acme, kind: "k", id: "x"), true, "first delete")
            try conformEqual(try await store.deleteDefinition(acme, kind: "k", id: "x"), false, "second delete")
            try conformEqual(try await store.definitions(acme, kind: "k"), [], "nothing left")
        },
        ConformanceCheck("tenants are isolated") { store in
            try await store.saveDefinition(acme, kind: "k", id: "x", body: [1])
            try conformEqual(try await store.definitions(globex, kind: "k"), [], "other tenant's definitions")
            try conformEqual(
                try await store.deleteDefinition(globex, kind: "k", id: "x"), false, "other tenant's delete")
            try conformEqual(try await store.definitions(acme, kind: "k").count, 1, "acme's definition kept")
        },
    ]
}
