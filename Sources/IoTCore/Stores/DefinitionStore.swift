/// A definition kept by a ``DefinitionStore``: the document an API accepted, by kind and id.
public struct StoredDefinition: Sendable, Hashable {
    /// The definition's id, unique within its kind and tenant.
    public var id: String
    /// The document as accepted (JSON for the management API).
    public var body: [UInt8]

    /// Creates a stored definition.
    public init(id: String, body: [UInt8]) {
        self.id = id
        self.body = body
    }
}

/// Where definitions added at run time are kept (alarm rules and statistics jobs added through the
/// management API), so that they come back after a restart.
///
/// The store does not interpret the documents: `IoTServer.ManagementServer` saves what it accepted and
/// re-adds it at start (``StoredDefinition/body`` is its JSON).
///
/// ## Implementing a definition store
/// - ``saveDefinition(_:kind:id:body:)`` inserts or replaces by (tenant, kind, id).
/// - ``definitions(_:kind:)`` returns one kind of one tenant, sorted by id.
/// - ``deleteDefinition(_:kind:id:)`` returns whether the definition was there.
/// - Tenants are isolated. Pass `IoTTesting.DefinitionStoreConformance` to check an implementation.
public protocol DefinitionStore: Sendable {
    /// Inserts or replaces a definition.
    func saveDefinition(_ scope: AccessScope, kind: String, id: String, body: [UInt8]) async throws
    /// The definitions of one kind, sorted by id.
    func definitions(_ scope: AccessScope, kind: String) async throws -> [StoredDefinition]
    /// Deletes a definition; returns whether it was there.
    func deleteDefinition(_ scope: AccessScope, kind: String, id: String) async throws -> Bool
}
