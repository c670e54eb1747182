import Foundation
import Hummingbird
import IoTCore

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
    }
}

extension ManagementServer {
    func modbusRoutes() -> RouteCollection<BasicRequestContext> {
        let router = RouteCollection(context: BasicRequestContext.self)
        let path = "/api/v1/tenants/:tenant/modbus/devices"
        router.get(RouterPath(path)) { _, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let modbus = try self.modbusTransport()
                return try JSONOutput.response(
                    modbus.devices().filter { $0.device.identity.tenant == scope.tenant }.map(ModbusDeviceOutput.init))
            }
        }
        router.get(RouterPath(path + "/:uid")) { _, context in
            try await self.handle {
                let identity = try await self.modbusIdentity(context)
                guard let status = try self.modbusTransport().device(identity) else {
                    throw APIError.notFound("no Modbus device \"\(identity.deviceUID)\" is polled in this tenant")
                }
                return try JSONOutput.response(ModbusDeviceOutput(status))
            }
        }
        router.post(RouterPath(path)) { request, context in
            try await self.handle {
                let scope = try await self.tenantScope(context)
                let modbus = try self.modbusTransport()
                let bytes = try await JSONOutput.body(of: request, maxBytes: self.configuration.maxBodyBytes)
                let device = try Self.modbusDevice(from: bytes, tenant: scope.tenant, uid: nil)
                try modbus.add(device)
                try await self.saveModbusDevice(device)
                return try JSONOutput.response(
                    ModbusDeviceOutput(try self.modbusStatus(device.identity)), status: .created)
            }
        }
        router.put(RouterPath(path + "/:uid")) { request, context in
            try await self.handle {
                let identity = try await self.modbusIdentity(context)
                let modbus = try self.modbusTransport()
                let bytes = try await JSONOutput.body(of: request, maxBytes: self.configuration.maxBodyBytes)
                let device = try Self.modbusDevice(from: bytes, tenant: identity.tenant, uid: identity.deviceUID)
                let existed = try await modbus.replace(device)
                try await self.saveModbusDevice(device)
                return try JSONOutput.response(
                    ModbusDeviceOutput(try self.modbusStatus(device.identity)), status: existed ? .ok : .created)
            }
        }
        router.delete(RouterPath(path + "/:uid")) { _, context in
            try await self.handle {
                let identity = try await self.modbusIdentity(context)
                let modbus = try self.modbusTransport()
                let forgotten = try await self.definitions?.deleteDefinition(
                    .tenant(identity.tenant), kind: DefinitionKind.modbusDevice, id: identity.deviceUID)
                guard await modbus.remove(identity) || forgotten == true else {
                    throw APIError.notFound("no Modbus device \"\(identity.deviceUID)\" is polled in this tenant")
                }
                return Response(status: .noContent)
            }
        }
        router.post(RouterPath(path + "/:uid/write")) { request, context in
            try await self.handle {
                let identity = try await self.modbusIdentity(context)
                let modbus = try self.modbusTransport()
                let input = try await JSONOutput.decode(
                    ModbusWriteInput.self, from: request, maxBytes: self.configuration.maxBodyBytes)
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
        guard let definitions else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = Array(try encoder.encode(device))
        try await definitions.saveDefinition(
            .tenant(device.identity.tenant), kind: DefinitionKind.modbusDevice, id: device.identity.deviceUID,
            body: body)
    }

    private func modbusStatus(_ identity: DeviceIdentity) throws -> ModbusDeviceStatus {
        guard let status = try modbusTransport().device(identity) else {
            throw APIError.notFound("no Modbus device \"\(identity.deviceUID)\" is polled in this tenant")
        }
        return status
    }

    func modbusTransport() throws -> any ModbusAdministration {
        guard let modbus else { throw APIError.notFound("this server runs no Modbus transport") }
        return modbus
    }

    private func modbusIdentity(_ context: BasicRequestContext) async throws -> DeviceIdentity {
        let scope = try await tenantScope(context)
        return DeviceIdentity(tenant: scope.tenant, deviceUID: context.parameters.get("uid") ?? "")
    }
}
