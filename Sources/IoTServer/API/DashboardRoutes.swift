import Foundation
public import Hummingbird
public import IoTCore

/// A big screen of the console: a title and tiles, kept as JSON.
struct Dashboard: Codable {
    /// One tile.
    struct Tile: Codable {
        /// `value`, `gauge`, `line`, `alarms` or `status`.
        var type: String
        var title: String?
        /// The device and signal of a `value`, `gauge` or `line` tile.
        var device: String?
        var signal: String?
        /// A gauge's scale.
        var min: Double?
        var max: Double?
        /// A line chart's span, in minutes (default 60).
        var minutes: Int?
        /// The devices of a `status` tile (their last report).
        var devices: [String]?
        /// Columns it spans, 1 to 4 (default 1).
        var width: Int?
    }

    /// Taken from the path when left out.
    var id: String?
    var title: String
    /// Seconds between refreshes of the values (default 10; live points come through the feed meanwhile).
    var refreshSeconds: Int?
    var tiles: [Tile]

    static let types: Set<String> = ["value", "gauge", "line", "alarms", "status"]

    /// Checks a dashboard; the error names the field (`tiles[2].signal`).
    func validate() throws {
        try validateIdentifier(id ?? "", "dashboard id")
        guard !title.isEmpty, title.count <= 200 else { throw APIError.badRequest("title: give 1 to 200 characters") }
        if let r = refreshSeconds, !(1...3_600).contains(r) {
            throw APIError.badRequest("refreshSeconds: \(r) is out of range; use 1 to 3600")
        }
        guard tiles.count <= 64 else { throw APIError.badRequest("tiles: \(tiles.count) tiles; at most 64") }
        for (i, tile) in tiles.enumerated() {
            let at = "tiles[\(i)]"
            guard Self.types.contains(tile.type) else {
                throw APIError.badRequest(
                    "\(at).type: \"\(tile.type)\" is not one of \(Self.types.sorted().joined(separator: ", "))")
            }
            if ["value", "gauge", "line"].contains(tile.type) {
                guard let device = tile.device, !device.isEmpty else {
                    throw APIError.badRequest("\(at).device: missing; a \(tile.type) tile shows one device's signal")
                }
                guard let signal = tile.signal, !signal.isEmpty else {
                    throw APIError.badRequest("\(at).signal: missing; a \(tile.type) tile shows one signal")
                }
                try validateSignalName(signal, "\(at).signal")
            }
            if tile.type == "gauge" {
                guard let min = tile.min, let max = tile.max, min < max else {
                    throw APIError.badRequest("\(at).min: a gauge needs min below max")
                }
            }
            if tile.type == "status", (tile.devices ?? []).isEmpty {
                throw APIError.badRequest("\(at).devices: list the devices whose status the tile shows")
            }
            if let m = tile.minutes, !(1...44_640).contains(m) {
                throw APIError.badRequest("\(at).minutes: \(m) is out of range; use 1 to 44640 (31 days)")
            }
            if let w = tile.width, !(1...4).contains(w) {
                throw APIError.badRequest("\(at).width: \(w) is out of range; use 1 to 4")
            }
        }
    }
}

/// `/api/v1/tenants/{tenant}/dashboards`: the console's big screens per tenant, kept in a
/// ``IoTCore/DefinitionStore`` (kind `dashboard`): list, read, create or replace (`PUT …/{id}`), delete.
/// Reading needs `dashboard:read`, changing `dashboard:write`.
public struct DashboardRoutes: ManagementRoutes {
    let definitions: any DefinitionStore

    /// Dashboards kept in `definitions`.
    public init(definitions: any DefinitionStore) {
        self.definitions = definitions
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let base = "/api/v1/tenants/:tenant/dashboards"
        router.get(RouterPath(base), needs: .dashboardRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let stored = try await definitions.definitions(scope, kind: "dashboard")
                var body = "["
                body += stored.map { String(decoding: $0.body, as: UTF8.self) }.joined(separator: ",")
                return JSONOutput.text(body + "]", contentType: "application/json")
            }
        }
        router.get(RouterPath(base + "/:id"), needs: .dashboardRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                guard
                    let found = try await definitions.definitions(scope, kind: "dashboard").first(where: { $0.id == id }
                    )
                else {
                    throw APIError(
                        .notFound, .notFound, "dashboard \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return JSONOutput.text(String(decoding: found.body, as: UTF8.self), contentType: "application/json")
            }
        }
        router.put(RouterPath(base + "/:id"), needs: .dashboardWrite) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                var dashboard = try await JSONOutput.decode(
                    Dashboard.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                if let named = dashboard.id, named != id {
                    throw APIError.badRequest("id: the body names \"\(named)\", the path \"\(id)\"")
                }
                dashboard.id = id
                try dashboard.validate()
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                let body = [UInt8](try encoder.encode(dashboard))
                try await definitions.saveDefinition(scope, kind: "dashboard", id: id, body: body)
                return JSONOutput.text(String(decoding: body, as: UTF8.self), contentType: "application/json")
            }
        }
        router.delete(RouterPath(base + "/:id"), needs: .dashboardWrite) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let id = context.parameters.get("id") ?? ""
                guard try await definitions.deleteDefinition(scope, kind: "dashboard", id: id) else {
                    throw APIError(
                        .notFound, .notFound, "dashboard \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
                }
                return Response(status: .noContent)
            }
        }
        return router
    }
}
