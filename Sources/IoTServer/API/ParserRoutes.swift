public import Hummingbird
public import IoTCore

/// The body of `POST /api/v1/parsers` and `PUT /api/v1/parsers/{name}`.
private struct ScriptInput: Decodable {
    var name: String?
    var language: String?
    var source: String?
}

/// A parser as listed: the built-in ones have no language or source.
private struct ParserOutput: Encodable {
    var name: String
    var builtIn: Bool
    var language: String?
    var source: String?
    var updatedAt: Int64?

    init(_ script: ScriptSource) {
        name = script.name
        builtIn = false
        language = script.language
        source = script.source
        updatedAt = script.updatedAt
    }

    init(builtIn name: String) {
        self.name = name
        builtIn = true
    }
}

/// `/api/v1/parsers`: script parsers added, replaced and removed at run time through a
/// ``IoTCore/ParserCatalog`` (platform-wide, like the parser registry). With these routes served, a product
/// may only name a registered parser (a typo is a 400 rather than every message of the product rejected
/// later), and a parser a product names cannot be removed.
public struct ParserRoutes: ManagementRoutes {
    let catalog: ParserCatalog

    /// Serves the parsers of `catalog`, whose ``IoTCore/ParserFactory`` compiles the scripts (so this
    /// module links no interpreter).
    public init(catalog: ParserCatalog) {
        self.catalog = catalog
    }

    /// Compiles again, or drops, a parser another instance saved or removed (a shared script store announces
    /// kind `parser-script`).
    public func definitionChanged(_ kind: String, id: String, of tenant: TenantID, _ api: ManagementAPI)
        async throws
    {
        guard kind == "parser-script" else { return }
        try await catalog.reload(named: id)
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/parsers"
        router.get(RouterPath(path), needs: .scriptRead) { _, _ in
            try await api.handle {
                let scripts = try await catalog.scripts()
                let builtIn = catalog.builtInNames.sorted().map(ParserOutput.init(builtIn:))
                return try JSONOutput.response(builtIn + scripts.map(ParserOutput.init))
            }
        }
        router.post(RouterPath(path), needs: .scriptWrite) { request, _ in
            try await api.handle {
                let input = try await JSONOutput.decode(
                    ScriptInput.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                guard let name = input.name else { throw APIError.badRequest("the parser needs a \"name\"") }
                if try await catalog.script(named: name) != nil || catalog.builtInNames.contains(name) {
                    throw APIError(
                        .conflict, .conflict,
                        "a parser named \"\(name)\" exists; replace it with PUT /api/v1/parsers/\(name) or pick another name"
                    )
                }
                let saved = try await Self.saveScript(input, name: name, catalog: catalog)
                return try JSONOutput.response(ParserOutput(saved), status: .created)
            }
        }
        router.get(RouterPath(path + "/:name"), needs: .scriptRead) { _, context in
            try await api.handle {
                let name = context.parameters.get("name") ?? ""
                if catalog.builtInNames.contains(name) { return try JSONOutput.response(ParserOutput(builtIn: name)) }
                guard let script = try await catalog.script(named: name) else {
                    throw APIError.notFound("parser \"\(name)\" does not exist; list them with GET /api/v1/parsers")
                }
                return try JSONOutput.response(ParserOutput(script))
            }
        }
        router.put(RouterPath(path + "/:name"), needs: .scriptWrite) { request, context in
            try await api.handle {
                let name = context.parameters.get("name") ?? ""
                let input = try await JSONOutput.decode(
                    ScriptInput.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                if let other = input.name, other != name {
                    throw APIError.badRequest("the body names parser \"\(other)\" but the path names \"\(name)\"")
                }
                let existed = try await catalog.script(named: name) != nil
                let saved = try await Self.saveScript(input, name: name, catalog: catalog)
                return try JSONOutput.response(ParserOutput(saved), status: existed ? .ok : .created)
            }
        }
        router.delete(RouterPath(path + "/:name"), needs: .scriptWrite) { _, context in
            try await api.handle {
                let name = context.parameters.get("name") ?? ""
                if let user = try await Self.productNaming(parser: name, in: api.registry) {
                    throw APIError(
                        .conflict, .conflict,
                        "parser \"\(name)\" is used by product \"\(user.product)\" of tenant \"\(user.tenant)\"; make the product name another parser first"
                    )
                }
                guard try await catalog.remove(named: name) else {
                    throw APIError.notFound("parser \"\(name)\" does not exist; list them with GET /api/v1/parsers")
                }
                return Response(status: .noContent)
            }
        }
        return router
    }

    private static func saveScript(_ input: ScriptInput, name: String, catalog: ParserCatalog) async throws
        -> ScriptSource
    {
        guard let language = input.language else {
            throw APIError.badRequest(
                "the parser needs a \"language\": one of \(catalog.languages.joined(separator: ", "))")
        }
        guard let source = input.source, !source.isEmpty else {
            throw APIError.badRequest("the parser needs a \"source\": the script text")
        }
        let result: Result<ScriptSource, IoTError>
        do {
            result = .success(try await catalog.save(ScriptSource(name: name, language: language, source: source)))
        } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let saved):
            return saved
        case .failure(let error) where error.code == .script || error.code == .timeout:
            throw APIError.badRequest("the script does not compile: \(error.message)")
        case .failure(let error):
            throw error
        }
    }

    /// The first product, over all tenants, whose ``IoTCore/Product/parser`` is `name`.
    private static func productNaming(parser name: String, in registry: any RegistryStore) async throws -> (
        tenant: TenantID, product: ProductID
    )? {
        for tenant in try await registry.tenants() {
            for product in try await registry.products(.tenant(tenant.id)) where product.parser == name {
                return (tenant.id, product.id)
            }
        }
        return nil
    }
}
