import Hummingbird
import IoTCore

/// The body of `POST …/products` and `PUT …/products/{id}`.
struct ProductInput: Decodable {
    var id: String?
    var name: String?
    var signals: [SignalInput]?
    var parser: String?
    var description: String?
    var gateway: Bool?
    var gatewayFor: GatewayScope?
}

extension ManagementAPI {
    func productRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/tenants/:tenant/products"
        router.get(RouterPath(path), needs: .deviceRead) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                return try JSONOutput.response(try await self.registry.products(scope))
            }
        }
        router.post(RouterPath(path), needs: .deviceWrite) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let input = try await JSONOutput.decode(
                    ProductInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                guard let id = input.id else { throw APIError.badRequest("the JSON body lacks the field \"id\"") }
                try validateIdentifier(id, "product id")
                guard try await self.registry.product(scope, id: ProductID(id)) == nil else {
                    throw APIError(.conflict, .conflict, "product \"\(id)\" already exists; change it with PUT")
                }
                let product = try Self.product(id: id, input)
                try self.checkParserIsRegistered(product)
                try await self.checkSignalQuota(product.signals.count, scope)
                try await self.registry.saveProduct(scope, product)
                self.ingestor?.invalidate(tenant: scope.tenant)
                return try JSONOutput.response(product, status: .created)
            }
        }
        router.get(RouterPath(path + "/:id"), needs: .deviceRead) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                return try JSONOutput.response(try await self.existingProduct(scope, context))
            }
        }
        router.put(RouterPath(path + "/:id"), needs: .deviceWrite) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let existing = try await self.existingProduct(scope, context)
                let input = try await JSONOutput.decode(
                    ProductInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                if let id = input.id, id != existing.id.rawValue {
                    throw APIError.badRequest(
                        "the body's id \"\(id)\" differs from the path's \"\(existing.id)\"; a product cannot be renamed"
                    )
                }
                let product = try Self.product(id: existing.id.rawValue, input)
                try self.checkParserIsRegistered(product)
                try await self.checkSignalQuota(product.signals.count, scope)
                try await self.registry.saveProduct(scope, product)
                self.ingestor?.invalidate(tenant: scope.tenant)
                return try JSONOutput.response(product)
            }
        }
        router.delete(RouterPath(path + "/:id"), needs: .deviceWrite) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let product = try await self.existingProduct(scope, context)
                try await self.registry.deleteProduct(scope, id: product.id)
                self.ingestor?.invalidate(tenant: scope.tenant)
                return Response(status: .noContent)
            }
        }
        return router
    }

    /// With a parser catalog, a product may only name a registered parser: a typo is a 400 now rather
    /// than every message of the product rejected later.
    func checkParserIsRegistered(_ product: Product) throws {
        guard let name = product.parser, let parsers, parsers.registry.parser(named: name) == nil else { return }
        throw APIError.badRequest(
            "parser \"\(name)\" is not registered; add it with POST /api/v1/parsers or name one of: \(parsers.registry.names.joined(separator: ", "))"
        )
    }

    static func product(id: String, _ input: ProductInput) throws -> Product {
        Product(
            id: ProductID(id), name: input.name, signals: try SignalInput.signals(input.signals), parser: input.parser,
            description: input.description, gateway: input.gateway ?? false, gatewayFor: try validated(input.gatewayFor)
        )
    }
}
