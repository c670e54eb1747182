import Foundation
public import Hummingbird
public import IoTCore

/// The body of `POST …/modbus/devices/{uid}/write`: a signal and a value (encoded with the register
/// map), or raw `area`, `address` and `values`.
struct ModbusWriteInput: Decodable {
    var signal: String?
    var value: SignalValue?
    var area: ModbusArea?
    var address: Int?
    var values: [UInt16]?

    enum CodingKeys: String, CodingKey { case signal, value, area, address, values }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        signal = try c.decodeIfPresent(String.self, forKey: .signal)
        area = try c.decodeIfPresent(ModbusArea.self, forKey: .area)
        address = try c.decodeIfPresent(Int.self, forKey: .address)
        values = try c.decodeIfPresent([UInt16].self, forKey: .values)
        if c.contains(.value) {
            if let b = try? c.decode(Bool.self, forKey: .value) {
                value = .bool(b)
            } else if let d = try? c.decode(Double.self, forKey: .value) {
                value = .number(d)
            } else {
                value = .text(try c.decode(String.self, forKey: .value))
            }
        }
    }
}

/// One polled Modbus device as the API shows it.
struct ModbusDeviceOutput: Encodable {
    var uid: String
    var endpoint: String
    var unitId: Int
    var intervalMillis: Int64
    var requestsPerPoll: Int
    var registers: [ModbusRegister]
    var successes: Int
    var failures: Int
    var consecutiveFailures: Int
    var lastError: String?
    var lastSuccessAt: Int64?
    var writes: Int
    var writeFailures: Int
    /// In a cluster, the instance that polls it.
    var instance: String?

    init(_ s: ModbusDeviceStatus) {
        uid = s.device.identity.deviceUID
        switch s.device.connection {
        case .tcp(let host, let port): endpoint = "tcp://\(host):\(port)"
        case .rtu(let path, let baud, let parity, let stopBits):
            endpoint = "rtu:\(path)?baud=\(baud)&parity=\(parity.rawValue)&stopBits=\(stopBits)"
        }
        unitId = s.device.unitID
        intervalMillis = s.device.intervalMillis
        requestsPerPoll = s.requestsPerPoll
        registers = s.device.registers
        successes = s.polling.successes
        failures = s.polling.failures
        consecutiveFailures = s.polling.consecutiveFailures
        lastError = s.polling.lastError
        lastSuccessAt = s.polling.lastSuccessAt
        writes = s.writes
        writeFailures = s.writeFailures
        instance = s.instance
    }
}

/// `…/tenants/{tenant}/modbus/devices`: the Modbus devices a ``IoTCore/ModbusAdministration`` polls (IoTModbus'
/// `ModbusTransport`), listed with their polling statistics, added, replaced and removed at run time, and
/// their registers and coils written.
public struct ModbusRoutes: ManagementRoutes {
    let modbus: any ModbusAdministration
    let definitions: (any DefinitionStore)?
    let gauges = SampledGauges()

    /// Serves the devices `modbus` polls.
    ///
    /// - Parameters:
    ///   - modbus: the poller.
    ///   - definitions: keeps the devices added or replaced through the API, so that
    ///     ``ManagementServer/restoreDefinitions(of:)`` polls them again after a restart (replacing a device
    ///     of the same identity the poller was created with); `nil` keeps them in memory only.
    public init(modbus: any ModbusAdministration, definitions: (any DefinitionStore)? = nil) {
        self.modbus = modbus
        self.definitions = definitions
    }

    /// Polls again the devices earlier runs added or replaced through the API.
    public func restoreDefinitions(
        of tenant: TenantID, _ api: ManagementAPI
    ) async throws -> [ManagementServer.RestoreFailure] {
        try await api.restore(
            DefinitionKind.modbusDevice, of: tenant, from: definitions,
            advice: "replace it with POST /api/v1/tenants/\(tenant)/modbus/devices"
        ) { try await modbus.replace(try Self.modbusDevice(from: $0, tenant: tenant, uid: nil)) }
    }

    /// Polls, polls anew or stops polling a device another instance changed through its API (a shared definition
    /// store).
    public func definitionChanged(_ kind: String, id: String, of tenant: TenantID, _ api: ManagementAPI)
        async throws
    {
        try await api.follow(
            kind, id: id, of: tenant, kind: DefinitionKind.modbusDevice, from: definitions,
            apply: {
                let device = try Self.modbusDevice(from: $0, tenant: tenant, uid: nil)
                guard modbus.device(device.identity)?.device != device else { return }  // this instance's own change
                try await modbus.replace(device)
            },
            remove: { await modbus.remove(DeviceIdentity(tenant: tenant, deviceUID: id)) })
    }

    /// Stops polling the tenant's devices before the tenant is deleted.
    public func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws {
        for status in modbus.devices() where status.device.identity.tenant == tenant {
            _ = await modbus.remove(status.device.identity)
        }
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/tenants/:tenant/modbus/devices"
        router.get(RouterPath(path), needs: .transportRead) { _, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                return try JSONOutput.response(
                    modbus.devices().filter {
                        $0.device.identity.tenant == scope.tenant && scope.permits(device: $0.device.identity.deviceUID)
                    }.map(ModbusDeviceOutput.init))
            }
        }
        router.get(RouterPath(path + "/:uid"), needs: .transportRead) { _, context in
            try await api.handle {
                let identity = try await Self.modbusIdentity(context, api)
                guard let status = modbus.device(identity) else {
                    throw APIError.notFound("no Modbus device \"\(identity.deviceUID)\" is polled in this tenant")
                }
                return try JSONOutput.response(ModbusDeviceOutput(status))
            }
        }
        router.post(RouterPath(path), needs: .transportAdmin) { request, context in
            try await api.handle {
                let scope = try await api.tenantScope(context)
                let bytes = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let device = try Self.modbusDevice(from: bytes, tenant: scope.tenant, uid: nil)
                try await Self.checkRegistered(device.identity, api)
                try modbus.add(device)
                try await saveModbusDevice(device)
                return try JSONOutput.response(
                    ModbusDeviceOutput(try modbusStatus(device.identity)), status: .created)
            }
        }
        router.put(RouterPath(path + "/:uid"), needs: .transportAdmin) { request, context in
            try await api.handle {
                let identity = try await Self.modbusIdentity(context, api)
                let bytes = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let device = try Self.modbusDevice(from: bytes, tenant: identity.tenant, uid: identity.deviceUID)
                try await Self.checkRegistered(device.identity, api)
                let existed = try await modbus.replace(device)
                try await saveModbusDevice(device)
                return try JSONOutput.response(
                    ModbusDeviceOutput(try modbusStatus(device.identity)), status: existed ? .ok : .created)
            }
        }
        router.delete(RouterPath(path + "/:uid"), needs: .transportAdmin) { _, context in
            try await api.handle {
                let identity = try await Self.modbusIdentity(context, api)
                let forgotten = try await definitions?.deleteDefinition(
                    .tenant(identity.tenant), kind: DefinitionKind.modbusDevice, id: identity.deviceUID)
                guard await modbus.remove(identity) || forgotten == true else {
                    throw APIError.notFound("no Modbus device \"\(identity.deviceUID)\" is polled in this tenant")
                }
                return Response(status: .noContent)
            }
        }
        router.post(RouterPath(path + "/:uid/write"), needs: .deviceControl) { request, context in
            try await api.handle {
                let identity = try await Self.modbusIdentity(context, api)
                let input = try await JSONOutput.decode(
                    ModbusWriteInput.self, from: request, maxBytes: api.configuration.maxBodyBytes)
                if let signal = input.signal {
                    guard let value = input.value else {
                        throw APIError.badRequest("the JSON body names a signal but lacks the field \"value\"")
                    }
                    try await modbus.write(identity, signal: signal, value: value)
                } else if let area = input.area, let address = input.address, let values = input.values {
                    try await modbus.write(identity, area: area, address: address, values: values)
                } else {
                    throw APIError.badRequest(
                        "send {\"signal\": <name>, \"value\": <value>} or {\"area\": \"holding\"|\"coil\", \"address\": <n>, \"values\": [<n>, …]}"
                    )
                }
                return try JSONOutput.response(["written": true])
            }
        }
        return router
    }

    /// Decodes a device of the API: the configuration form of ``IoTCore/ModbusDevice`` with the
    /// tenant of the path (a `tenant` field, if any, must match it) and, for `PUT …/{uid}`, the uid of the
    /// path (a `uid` field, if any, must match it); 400 saying what is wrong otherwise.
    static func modbusDevice(from bytes: [UInt8], tenant: TenantID, uid: String?) throws -> ModbusDevice {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw APIError.badRequest(
                "the body must be a JSON object: {\"uid\": …, \"tcp\": {\"host\": …, \"port\": …} or \"rtu\": {\"path\": …}, \"unitId\": …, \"intervalMillis\": …, \"registers\": […]}"
            )
        }
        if let given = object["tenant"] {
            guard given as? String == tenant.rawValue else {
                throw APIError.badRequest("the body's \"tenant\" differs from the tenant of the path; leave it out")
            }
        }
        object["tenant"] = tenant.rawValue
        if let uid {
            if let given = object["uid"] {
                guard given as? String == uid else {
                    throw APIError.badRequest(
                        "the body's \"uid\" differs from the uid of the path; leave it out or make them equal")
                }
            }
            object["uid"] = uid
        }
        guard let uid = object["uid"] as? String, !uid.isEmpty else {
            throw APIError.badRequest("the JSON body lacks the field \"uid\" (the device's id in the tenant)")
        }
        let device = try JSONOutput.decode(
            ModbusDevice.self, from: Array(try JSONSerialization.data(withJSONObject: object)))
        try device.validate()
        return device
    }

    /// Keeps a device added through the API in the definition store, so ``restoreDefinitions()`` polls
    /// it again after a restart.
    private func saveModbusDevice(_ device: ModbusDevice) async throws {
        try await definitions?.saveDefinition(
            .tenant(device.identity.tenant), kind: DefinitionKind.modbusDevice, id: device.identity.deviceUID,
            body: try definitionBytes(device))
    }

    private func modbusStatus(_ identity: DeviceIdentity) throws -> ModbusDeviceStatus {
        guard let status = modbus.device(identity) else {
            throw APIError.notFound("no Modbus device \"\(identity.deviceUID)\" is polled in this tenant")
        }
        return status
    }

    /// A polled device's records are the device's own: it must be registered in the tenant, unless the tenant
    /// registers unknown devices on first use (otherwise every poll would be rejected).
    ///
    /// - Throws: 400 naming the device and what to do.
    private static func checkRegistered(_ identity: DeviceIdentity, _ api: ManagementAPI) async throws {
        let scope = AccessScope.tenant(identity.tenant)
        guard try await api.registry.device(scope, uid: identity.deviceUID) == nil else { return }
        if case .register? = try await api.registry.tenant(identity.tenant)?.policy.unknownDevices { return }
        throw APIError.badRequest(
            "device \"\(identity.deviceUID)\" is not registered in tenant \"\(identity.tenant)\", so every poll would be rejected; create it with POST /api/v1/tenants/\(identity.tenant)/devices first"
        )
    }

    private static func modbusIdentity(_ context: ManagementContext, _ api: ManagementAPI) async throws
        -> DeviceIdentity
    {
        let scope = try await api.tenantScope(context)
        let uid = context.parameters.get("uid") ?? ""
        guard scope.permits(device: uid) else {
            throw APIError(.notFound, .unknownDevice, "device \"\(uid)\" does not exist in tenant \"\(scope.tenant)\"")
        }
        return DeviceIdentity(tenant: scope.tenant, deviceUID: uid)
    }
}

extension ModbusRoutes {
    /// `iot_modbus_devices{state}` (`answering`, `failing`: the last poll failed), and per device (`device`,
    /// `tenant`): `iot_modbus_device_up` (1 or 0), `iot_modbus_device_polls`, `…_poll_failures` and
    /// `…_consecutive_failures`.
    public func sampleMetrics() async {
        let devices = modbus.devicesPolledHere()
        var sample = SampledGauges.counts(
            "iot_modbus_devices", states: devices.map { $0.polling.consecutiveFailures == 0 ? "answering" : "failing" },
            all: ["answering", "failing"])
        for d in devices {
            let dims = [("device", d.device.identity.deviceUID), ("tenant", "\(d.device.identity.tenant)")]
            let values: [(String, Int)] = [
                ("up", d.polling.consecutiveFailures == 0 ? 1 : 0), ("polls", d.polling.successes),
                ("poll_failures", d.polling.failures), ("consecutive_failures", d.polling.consecutiveFailures),
            ]
            for (name, value) in values {
                sample.append(.init(label: "iot_modbus_device_" + name, dimensions: dims, value: Double(value)))
            }
        }
        gauges.update(sample)
    }
}
