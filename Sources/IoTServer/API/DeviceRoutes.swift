import HTTPTypes
import Hummingbird
import IoTCore

/// The body of `POST …/devices` and `PUT …/devices/{uid}`.
struct DeviceInput: Decodable {
    var uid: String?
    var product: String
    var name: String?
    var tags: [String: String]?
    var department: String?
    var pushIntervalMillis: Int64?
    var signals: [SignalInput]?
    var gateway: Bool?
    var gatewayFor: GatewayScope?
}

extension ManagementAPI {
    func deviceRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/tenants/:tenant/devices"
        router.get(RouterPath(path), needs: .deviceRead) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let query = try DeviceListQuery(request.uri.queryParameters)
                let devices = try await self.registry.devices(scope, product: query.product)
                let listed = try await self.listing(devices, scope, query)
                var response = try JSONOutput.response(listed.page)
                response.headers[.totalCount] = String(listed.total)
                return response
            }
        }
        router.get(RouterPath("/api/v1/tenants/:tenant/overview"), needs: .deviceRead) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let devices = try await self.registry.devices(scope, product: nil)
                var overview = TenantOverview(
                    devices: devices.count, products: Set(devices.map(\.product)).count)
                if let activity = self.activity {
                    let last = try await activity.lastActivity(scope.tenant)
                    let now = activity.now()
                    let online = devices.count { activity.status(of: $0, lastActivity: last[$0.uid], now: now).online }
                    overview.online = online
                    overview.offline = devices.count - online
                    overview.neverSeen = devices.count { last[$0.uid] == nil }
                    overview.pointsPerSecond = activity.pointsPerSecond(scope.tenant)
                }
                return try JSONOutput.response(overview)
            }
        }
        router.post(RouterPath(path), needs: .deviceWrite) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                var input = try await JSONOutput.decode(
                    DeviceInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                guard let uid = input.uid else { throw APIError.badRequest("the JSON body lacks the field \"uid\"") }
                try validateIdentifier(uid, "device uid")
                input.department = try Self.placement(input.department, replacing: nil, context.principal())
                // Looked for in the whole tenant: a device outside the caller's scope is not replaced either.
                guard try await self.registry.device(.tenant(scope.tenant), uid: uid) == nil else {
                    throw APIError(.conflict, .conflict, "device \"\(uid)\" already exists; change it with PUT")
                }
                let device = try await self.device(uid: uid, input, scope: scope, createdAt: self.clock.now())
                if let limit = try await self.quotas(scope).devices,
                    try await self.registry.devices(.tenant(scope.tenant), product: nil).count >= limit
                {
                    throw TenantQuotas.exceeded("devices", limit: limit, tenant: scope.tenant)
                }
                try await self.checkSignalQuota(device, scope)
                // Within the caller's departments (checked above), so within their scope once saved.
                try await self.registry.saveDevice(.tenant(scope.tenant), device)
                self.ingestor?.invalidate(tenant: scope.tenant, device: uid)
                self.identity?.forgetResolvedCredentials()
                return try JSONOutput.response(device, status: .created)
            }
        }
        router.get(RouterPath(path + "/:uid"), needs: .deviceRead) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                guard let activity = self.activity else { return try JSONOutput.response(device) }
                let last = try await activity.lastActivity(scope.tenant)[device.uid]
                return try JSONOutput.response(
                    ListedDevice(device: device, status: activity.status(of: device, lastActivity: last)))
            }
        }
        router.put(RouterPath(path + "/:uid"), needs: .deviceWrite) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let existing = try await self.existingDevice(scope, context)
                var input = try await JSONOutput.decode(
                    DeviceInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
                if let uid = input.uid, uid != existing.uid {
                    throw APIError.badRequest(
                        "the body's uid \"\(uid)\" differs from the path's \"\(existing.uid)\"; a device cannot be renamed"
                    )
                }
                input.department = try Self.placement(input.department, replacing: existing, context.principal())
                let device = try await self.device(
                    uid: existing.uid, input, scope: scope, createdAt: existing.createdAt)
                try await self.checkSignalQuota(device, scope)
                try await self.registry.saveDevice(scope, device)
                self.ingestor?.invalidate(tenant: scope.tenant, device: device.uid)
                if device.department != existing.department { self.identity?.forgetResolvedCredentials() }
                return try JSONOutput.response(device)
            }
        }
        router.delete(RouterPath(path + "/:uid"), needs: .deviceWrite) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                // A deleted device must not authenticate any more, with any credential (tokens, passwords,
                // certificates, short-lived tokens), here or at a broker the tokens issuer provisions
                // (ProvisioningTokenIssuer); a device created again with the same uid inherits nothing. When a
                // broker is unreachable this fails and the device stays, so that the DELETE can be retried.
                let identity = DeviceIdentity(tenant: scope.tenant, deviceUID: device.uid)
                try await self.tokens.revokeTokens(of: identity)
                try await self.credentials?.revokeAll(of: identity)
                try await self.registry.deleteDevice(scope, uid: device.uid)
                self.ingestor?.invalidate(tenant: scope.tenant, device: device.uid)
                return Response(status: .noContent)
            }
        }
        router.get(RouterPath(path + "/:uid/signals"), needs: .deviceRead) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let device = try await self.existingDevice(scope, context)
                let product = try await self.registry.product(scope, id: device.product)
                let signals = device.effectiveSignals(product: product).values.sorted { $0.name < $1.name }
                return try JSONOutput.response(signals)
            }
        }
        return router
    }

    /// The devices of the listing's page (each with its activity when it is known) and how many matched.
    private func listing(
        _ devices: [Device], _ scope: AccessScope, _ query: DeviceListQuery
    ) async throws -> (page: [ListedDevice], total: Int) {
        let last = try await activity?.lastActivity(scope.tenant) ?? [:]
        let now = activity?.now()
        var matched: [ListedDevice] = []
        for device in devices where query.matches(device) {
            let status = activity?.status(of: device, lastActivity: last[device.uid], now: now)
            if let wanted = query.online, status?.online != wanted { continue }
            matched.append(ListedDevice(device: device, status: status))
        }
        let page = matched.dropFirst(query.offset).prefix(query.limit ?? matched.count)
        return (Array(page), matched.count)
    }

    /// The department a device written by `principal` is placed in. A caller with a data scope creates devices in
    /// their own departments only (their own when the body names none) and moves them only there; a device that
    /// names no department in a `PUT`, or the one it has, keeps it (a device seen through a grant stays where it
    /// is). Anyone else places devices where the body says.
    ///
    /// - Parameter existing: the device replaced (`nil` when creating).
    /// - Throws: 403 naming the department outside the caller's scope.
    static func placement(_ named: String?, replacing existing: Device?, _ principal: Principal) throws -> String? {
        guard let departments = principal.departments else { return named }
        if let existing {
            guard let named, named != existing.department else { return existing.department }
            guard departments.contains(named) else { throw outsideScope(named, principal) }
            return named
        }
        guard let department = named ?? principal.department else {
            throw APIError(
                .forbidden, .forbidden,
                "your data scope has no department to create a device in; ask an administrator to give you one")
        }
        guard departments.contains(department) else { throw outsideScope(department, principal) }
        return department
    }

    private static func outsideScope(_ department: String, _ principal: Principal) -> APIError {
        APIError(
            .forbidden, .forbidden,
            "department \"\(department)\" is outside your data scope; use your department \"\(principal.department ?? "")\" or one below it"
        )
    }

    private func device(uid: String, _ input: DeviceInput, scope: AccessScope, createdAt: Int64) async throws -> Device
    {
        try await checkProduct(input.product, scope)
        return try makeDevice(uid: uid, input, createdAt: createdAt)
    }

    /// Refuses a product id that is not valid or does not exist in the scope's tenant.
    func checkProduct(_ product: String, _ scope: AccessScope) async throws {
        try validateIdentifier(product, "product id")
        guard try await registry.product(scope, id: ProductID(product)) != nil else {
            throw APIError.badRequest(
                "product \"\(product)\" does not exist in tenant \"\(scope.tenant)\"; create it with POST /api/v1/tenants/\(scope.tenant)/products first"
            )
        }
    }

    /// The device `input` describes (its product checked by ``checkProduct(_:_:)``).
    func makeDevice(uid: String, _ input: DeviceInput, createdAt: Int64) throws -> Device {
        if let interval = input.pushIntervalMillis {
            try IoTLimits.checkDuration(interval, "pushIntervalMillis")
        }
        return Device(
            uid: uid, product: ProductID(input.product), name: input.name, tags: input.tags ?? [:],
            department: input.department,
            pushIntervalMillis: input.pushIntervalMillis, signals: try SignalInput.signals(input.signals),
            createdAt: createdAt, gateway: input.gateway, gatewayFor: try validated(input.gatewayFor))
    }
}

/// Checks the ids of a gateway scope (product ids and device uids by their rules).
func validated(_ scope: GatewayScope?) throws -> GatewayScope? {
    for p in scope?.products ?? [] { try validateIdentifier(p.rawValue, "gatewayFor product") }
    for d in scope?.devices ?? [] { try validateIdentifier(d, "gatewayFor device") }
    return scope
}

extension ManagementAPI {
    /// The quotas of the scope's tenant.
    func quotas(_ scope: AccessScope) async throws -> TenantQuotas {
        try await registry.tenant(scope.tenant)?.quotas ?? TenantQuotas()
    }

    /// Refuses a product declaring more signals than the tenant's ``IoTCore/TenantQuotas/signals``.
    func checkSignalQuota(_ count: Int, _ scope: AccessScope) async throws {
        if let limit = try await quotas(scope).signals, count > limit {
            throw TenantQuotas.exceeded("signals", limit: limit, tenant: scope.tenant)
        }
    }

    /// Refuses a device with more signals (its product's and its own) than the tenant's quota.
    func checkSignalQuota(_ device: Device, _ scope: AccessScope) async throws {
        let product = try await registry.product(scope, id: device.product)
        try await checkSignalQuota(device.effectiveSignals(product: product).count, scope)
    }
}

/// The query of `GET …/devices`: `q` (in the uid, name, department or a tag `key=value`; ASCII letters in any
/// case), `product`,
/// `status` (`online` or `offline`), `limit` and `offset`.
struct DeviceListQuery {
    /// The `q` in lowercase, as UTF-8.
    var search: [UInt8]?
    var product: ProductID?
    var online: Bool?
    var limit: Int?
    var offset = 0

    init(_ parameters: Parameters) throws {
        if let q = parameters["q"], !q.isEmpty { search = Array(String(q).lowercased().utf8) }
        product = parameters["product"].map { ProductID(String($0)) }
        switch parameters["status"].map(String.init) {
        case nil, "": break
        case "online": online = true
        case "offline": online = false
        case let other?: throw APIError.badRequest("status must be online or offline, not \"\(other)\"")
        }
        if let text = parameters["limit"] {
            guard let value = Int(text), value > 0 else {
                throw APIError.badRequest("limit must be a positive integer, not \"\(text)\"")
            }
            limit = value
        }
        if let text = parameters["offset"] {
            guard let value = Int(text), value >= 0 else {
                throw APIError.badRequest("offset must be an integer of 0 or more, not \"\(text)\"")
            }
            offset = value
        }
    }

    func matches(_ device: Device) -> Bool {
        guard let search else { return true }
        func has(_ text: String?) -> Bool { text.map { Self.contains($0, search) } ?? false }
        let pair = search.contains(UInt8(ascii: "="))
        return has(device.uid) || has(device.name) || has(device.department)
            || device.tags.contains { has($0.key) || has($0.value) || (pair && has($0.key + "=" + $0.value)) }
    }

    /// Whether `text` contains `needle` (lowercase UTF-8), ASCII letters in any case: a search through 10,000
    /// devices takes a few milliseconds, where `lowercased()` on each field takes tens.
    static func contains(_ text: String, _ needle: [UInt8]) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard needle.count <= bytes.count else { return false }
            func folded(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
            outer: for start in 0...(bytes.count - needle.count) {
                for (i, n) in needle.enumerated() where folded(bytes[start + i]) != n { continue outer }
                return true
            }
            return false
        }
    }
}

/// A device as the API lists it: its own fields, then `lastActivity` (UTC ms, absent when never heard from) and
/// `online` when the server tracks activity.
struct ListedDevice: Encodable {
    var device: Device
    var status: DeviceActivity.Status?

    func encode(to encoder: any Encoder) throws {
        try device.encode(to: encoder)
        guard let status else { return }
        var c = encoder.container(keyedBy: Keys.self)
        try c.encodeIfPresent(status.lastActivity, forKey: .lastActivity)
        try c.encode(status.online, forKey: .online)
    }

    private enum Keys: String, CodingKey { case lastActivity, online }
}

/// `GET /api/v1/tenants/{tenant}/overview`: the caller's devices, and with activity tracking how many are online.
struct TenantOverview: Encodable {
    var devices: Int
    var products: Int
    var online: Int?
    var offline: Int?
    var neverSeen: Int?
    var pointsPerSecond: Double?
}
