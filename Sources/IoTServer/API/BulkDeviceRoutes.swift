import Hummingbird
import IoTCore

/// The body of `POST /api/v1/tenants/{tenant}/devices/bulk`.
struct BulkDevicesInput: Decodable {
    /// The devices, each as `POST …/devices` takes it (`uid` required).
    var devices: [DeviceInput]
    /// Whether each device gets an access token (default true).
    var issueTokens: Bool?
    /// The tokens' label (default `"bulk"`).
    var tokenLabel: String?
}

/// One created device in the answer: its uid and, when asked for, its access token (shown once).
struct BulkDeviceOutput: Encodable {
    var uid: String
    var token: String?
}

extension ManagementAPI {
    /// Devices created in one call, at most.
    static let bulkMaxDevices = 10_000
    /// The body of a bulk call may be this large even when `maxBodyBytes` is smaller.
    static let bulkMaxBytes = 8 << 20

    /// `error` as the API answers it, its message starting with the device's place in the request.
    static func atDevice(_ index: Int, _ error: any Error) -> APIError {
        var answer = APIError(error)
        answer.message = "devices[\(index)]: " + answer.message
        return answer
    }

    /// `POST /api/v1/tenants/{tenant}/devices/bulk`: creates up to 10,000 devices, each with an access token
    /// (returned once), in one registry transaction and one credential transaction. Checked first, all or
    /// nothing: every uid valid and new (409 naming the ones that exist), every product known, the tenant's
    /// quotas, and each device's department within the caller's scope.
    func bulkDeviceRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        router.post(RouterPath("/api/v1/tenants/:tenant/devices/bulk"), needs: .deviceWrite) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let input = try await JSONOutput.decode(
                    BulkDevicesInput.self, from: request,
                    maxBytes: max(self.configuration.maxBodyBytes, Self.bulkMaxBytes))
                guard (1...Self.bulkMaxDevices).contains(input.devices.count) else {
                    throw APIError.badRequest(
                        "\"devices\" holds \(input.devices.count) devices; send 1 to \(Self.bulkMaxDevices) per call")
                }
                let principal = try context.principal()
                var seen = Set<String>()
                var uids: [String] = []
                for (i, d) in input.devices.enumerated() {
                    guard let uid = d.uid else {
                        throw APIError.badRequest("devices[\(i)] lacks the field \"uid\"")
                    }
                    do {
                        try validateIdentifier(uid, "device uid")
                    } catch {
                        throw Self.atDevice(i, error)
                    }
                    guard seen.insert(uid).inserted else {
                        throw APIError.badRequest("devices[\(i)]: uid \"\(uid)\" appears twice in the request")
                    }
                    uids.append(uid)
                }
                for product in Set(input.devices.map(\.product)) { try await self.checkProduct(product, scope) }
                // Looked for in the whole tenant, as for one device.
                let existing = try await self.registry.devices(.tenant(scope.tenant), product: nil)
                let existingUIDs = Set(existing.map(\.uid))
                let clashes = uids.filter(existingUIDs.contains)
                guard clashes.isEmpty else {
                    throw APIError(
                        .conflict, .conflict,
                        "\(clashes.count) of the devices exist already (\(clashes.prefix(5).joined(separator: ", "))\(clashes.count > 5 ? ", …" : "")); send only new devices, change existing ones with PUT"
                    )
                }
                if let limit = try await self.quotas(scope).devices, existing.count + uids.count > limit {
                    throw TenantQuotas.exceeded("devices", limit: limit, tenant: scope.tenant)
                }
                let now = self.clock.now()
                var devices: [Device] = []
                devices.reserveCapacity(uids.count)
                for (i, var d) in input.devices.enumerated() {
                    do {
                        d.department = try Self.placement(d.department, replacing: nil, principal)
                        let device = try self.makeDevice(uid: uids[i], d, createdAt: now)
                        if d.signals != nil { try await self.checkSignalQuota(device, scope) }
                        devices.append(device)
                    } catch {
                        throw Self.atDevice(i, error)
                    }
                }
                try await self.registry.saveDevices(.tenant(scope.tenant), devices)
                var tokens: [String?] = Array(repeating: nil, count: devices.count)
                if input.issueTokens ?? true {
                    let issued = try await self.tokens.issueTokens(
                        for: devices.map { DeviceIdentity(tenant: scope.tenant, deviceUID: $0.uid) },
                        label: input.tokenLabel ?? "bulk", now: now)
                    tokens = issued.map { $0 }
                }
                for uid in uids { self.ingestor?.invalidate(tenant: scope.tenant, device: uid) }
                self.identity?.forgetResolvedCredentials()
                struct Answer: Encodable {
                    var created: Int
                    var devices: [BulkDeviceOutput]
                }
                return try JSONOutput.response(
                    Answer(
                        created: devices.count,
                        devices: zip(uids, tokens).map { BulkDeviceOutput(uid: $0.0, token: $0.1) }),
                    status: .created)
            }
        }
        return router
    }
}
