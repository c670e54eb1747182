public import IoTCore
import Synchronization

/// A ``DefinitionStore`` in memory.
///
/// ```swift
/// let api = ManagementServer(registry: registry, points: points, tokens: tokens, ingestor: nil,
///                            prometheus: nil, definitions: InMemoryDefinitionStore())
/// ```
public final class InMemoryDefinitionStore: DefinitionStore {
    private struct Key: Hashable {
        var tenant: TenantID
        var kind: String
    }
    private let state = Mutex<[Key: [String: [UInt8]]]>([:])

    /// Creates an empty store.
    public init() {}

    public func saveDefinition(_ scope: AccessScope, kind: String, id: String, body: [UInt8]) async throws {
        state.withLock { $0[Key(tenant: scope.tenant, kind: kind), default: [:]][id] = body }
    }

    public func definitions(_ scope: AccessScope, kind: String) async throws -> [StoredDefinition] {
        state.withLock { s in
            (s[Key(tenant: scope.tenant, kind: kind)] ?? [:]).map { StoredDefinition(id: $0.key, body: $0.value) }
                .sorted { $0.id < $1.id }
        }
    }

    public func deleteDefinition(_ scope: AccessScope, kind: String, id: String) async throws -> Bool {
        state.withLock { $0[Key(tenant: scope.tenant, kind: kind)]?.removeValue(forKey: id) != nil }
    }
}
