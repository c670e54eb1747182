import Foundation
import IoTCoAP
import IoTCore
import IoTModbus
import IoTPostgres
import Logging

/// In a cluster, the platform's Modbus devices: every instance knows all of them (its file, the definition store,
/// the other instances' API calls), and each is polled by the instance ``ClusterOwnership`` names. Any instance
/// answers the API: a device polled elsewhere shows the status its poller published last (``PostgresStatusBoard``),
/// and a write to it is run there (``PostgresInstanceCalls``).
final class PlacedModbus: ModbusAdministration {
    let inner: ModbusOnDemand
    let calls: PostgresInstanceCalls
    let instanceID: String
    let logger: Logger
    let placement = Placement<ModbusDevice, ModbusDeviceStatus>(kind: "modbus")

    static let writeOperation = "modbus.write"

    init(inner: ModbusOnDemand, calls: PostgresInstanceCalls, instanceID: String, logger: Logger) {
        self.inner = inner
        self.calls = calls
        self.instanceID = instanceID
        self.logger = logger
        calls.handle(Self.writeOperation) { [weak self] body throws(IoTError) in
            guard let self else { throw IoTError(.shutdown, "the instance is stopping") }
            return try await self.serveWrite(body)
        }
    }

    private static func id(_ identity: DeviceIdentity) -> String { "\(identity.tenant)/\(identity.deviceUID)" }

    private static func notPolled(_ identity: DeviceIdentity) -> IoTError {
        IoTError(.notFound, "no Modbus device \"\(identity.deviceUID)\" is polled in this tenant")
    }

    /// The status of an item another instance polls (or none has placed yet).
    private func elsewhere(_ id: String, _ item: Placement<ModbusDevice, ModbusDeviceStatus>.Item) -> ModbusDeviceStatus
    {
        if let (status, instance) = placement.remoteStatus(id), status.device == item.spec {
            var s = status
            s.instance = instance
            return s
        }
        return ModbusDeviceStatus(
            device: item.spec, polling: .init(), requestsPerPoll: 0, writes: 0, writeFailures: 0,
            instance: placement.owner(id, tenant: item.tenant))
    }

    func devices() -> [ModbusDeviceStatus] {
        var local: [String: ModbusDeviceStatus] = [:]
        for s in inner.devices() { local[Self.id(s.device.identity)] = s }
        return placement.items().map { id, item in
            if var s = local[id], placement.isLocal(id, tenant: item.tenant) {
                s.instance = instanceID
                return s
            }
            return elsewhere(id, item)
        }
    }

    func devicesPolledHere() -> [ModbusDeviceStatus] {
        inner.devices().filter { placement.isLocal(Self.id($0.device.identity), tenant: $0.device.identity.tenant) }
    }

    func device(_ identity: DeviceIdentity) -> ModbusDeviceStatus? {
        let id = Self.id(identity)
        guard let item = placement.item(id) else { return nil }
        if placement.isLocal(id, tenant: identity.tenant), var s = inner.device(identity) {
            s.instance = instanceID
            return s
        }
        return elsewhere(id, item)
    }

    func add(_ device: ModbusDevice) throws(IoTError) {
        let id = Self.id(device.identity)
        guard placement.item(id) == nil else {
            throw IoTError(
                .conflict, "Modbus device \(device.identity) is already polled; remove it first to change it")
        }
        try device.validate()
        guard placement.put(id, tenant: device.identity.tenant, device).local else { return }
        do {
            try inner.add(device)
        } catch {
            _ = placement.remove(id)
            throw error
        }
    }

    func remove(_ identity: DeviceIdentity) async -> Bool {
        guard placement.remove(Self.id(identity)) != nil else { return false }
        _ = await inner.remove(identity)
        return true
    }

    func replace(_ device: ModbusDevice) async throws(IoTError) -> Bool {
        try device.validate()
        let (existed, local) = placement.put(Self.id(device.identity), tenant: device.identity.tenant, device)
        if local { try await inner.replace(device) }
        return existed
    }

    /// A write, as sent to the instance that polls the device.
    struct WriteRequest: Codable {
        var tenant: TenantID
        var uid: String
        var signal: String?
        var value: SignalValue?
        var area: ModbusArea?
        var address: Int?
        var values: [UInt16]?
    }

    func write(_ identity: DeviceIdentity, signal: String, value: SignalValue) async throws(IoTError) {
        try await send(WriteRequest(tenant: identity.tenant, uid: identity.deviceUID, signal: signal, value: value))
    }

    func write(_ identity: DeviceIdentity, area: ModbusArea, address: Int, values: [UInt16]) async throws(IoTError) {
        try await send(
            WriteRequest(tenant: identity.tenant, uid: identity.deviceUID, area: area, address: address, values: values)
        )
    }

    /// The instance that polls the device, or `nil` for this one.
    private func owner(_ identity: DeviceIdentity) throws(IoTError) -> String? {
        let id = Self.id(identity)
        guard placement.item(id) != nil else { throw Self.notPolled(identity) }
        guard let owner = placement.owner(id, tenant: identity.tenant) else {
            throw IoTError(
                .unavailable,
                "the cluster has not placed Modbus device \"\(identity.deviceUID)\" yet; retry in a moment")
        }
        return owner == instanceID ? nil : owner
    }

    /// Runs a write here when this instance polls the device, or on the instance that does.
    private func send(_ request: WriteRequest) async throws(IoTError) {
        let identity = DeviceIdentity(tenant: request.tenant, deviceUID: request.uid)
        guard let owner = try owner(identity) else { return try await run(request) }
        let body = String(decoding: (try? JSONEncoder().encode(request)) ?? Data(), as: UTF8.self)
        _ = try await calls.call(owner, Self.writeOperation, body)
    }

    private func run(_ r: WriteRequest) async throws(IoTError) {
        let identity = DeviceIdentity(tenant: r.tenant, deviceUID: r.uid)
        if let signal = r.signal, let value = r.value {
            try await inner.write(identity, signal: signal, value: value)
        } else if let area = r.area, let address = r.address, let values = r.values {
            try await inner.write(identity, area: area, address: address, values: values)
        } else {
            throw IoTError(
                .invalidArgument, "a Modbus write names a signal and a value, or an area, address and values")
        }
    }

    /// Runs a write another instance sent, when this one polls the device.
    private func serveWrite(_ body: String) async throws(IoTError) -> String {
        guard let r = try? JSONDecoder().decode(WriteRequest.self, from: Data(body.utf8)) else {
            throw IoTError(.invalidArgument, "a Modbus write from another instance could not be read")
        }
        let identity = DeviceIdentity(tenant: r.tenant, deviceUID: r.uid)
        guard placement.isLocal(Self.id(identity), tenant: r.tenant) else {
            throw IoTError(
                .unavailable, "instance \(instanceID) no longer polls Modbus device \"\(r.uid)\"; retry in a moment")
        }
        try await run(r)
        return "{}"
    }

    /// Polls what this instance owns from now on, and stops what it owns no longer.
    func ownershipChanged(_ ownership: ClusterOwnership) async {
        let (gained, lost) = placement.setOwnership(ownership)
        for (_, item) in lost { _ = await inner.remove(item.spec.identity) }
        for (id, item) in gained where placement.item(id) != nil {  // not removed meanwhile
            do {
                try await inner.replace(item.spec)
            } catch {
                logger.error(
                    "a Modbus device placed on this instance cannot be polled",
                    metadata: ["device": "\(item.spec.identity)", "error": "\(error)"])
            }
        }
    }

    /// Publishes the statuses of the devices this instance polls, and reads the others'.
    func sync(_ board: PostgresStatusBoard) async throws {
        try await placement.sync(
            board, instance: instanceID,
            devicesPolledHere().map { ($0.device.identity.tenant, $0.device.identity.deviceUID, $0) }
        ) { "\($0)/\($1)" }
    }
}

/// In a cluster, the platform's CoAP observations: every instance knows all of them, and each is observed by the
/// instance ``ClusterOwnership`` names; an observation run elsewhere shows the report its observer published last.
final class PlacedCoAPObservations: CoAPObservationAdministration {
    let inner: CoAPObserverManager
    let instanceID: String
    let logger: Logger
    let placement = Placement<CoAPObservationSpec, CoAPObservationReport>(kind: "coap")

    init(inner: CoAPObserverManager, instanceID: String, logger: Logger) {
        self.inner = inner
        self.instanceID = instanceID
        self.logger = logger
    }

    private func report(_ id: String, _ item: Placement<CoAPObservationSpec, CoAPObservationReport>.Item)
        -> CoAPObservationReport
    {
        if placement.isLocal(id, tenant: item.tenant), var r = inner.report(id: id) {
            r.instance = instanceID
            return r
        }
        if let (status, instance) = placement.remoteStatus(id), status.spec == item.spec {
            var r = status
            r.instance = instance
            return r
        }
        var r = CoAPObservationReport(
            spec: item.spec, state: "registering", registrations: 0, notifications: 0, stored: 0, rejected: 0,
            lastError: nil)
        r.instance = placement.owner(id, tenant: item.tenant)
        return r
    }

    func list() -> [CoAPObservationReport] { placement.items().map { report($0.id, $0.item) } }

    func observedHere() -> [CoAPObservationReport] {
        inner.list().filter { placement.isLocal($0.spec.id, tenant: TenantID($0.spec.tenant)) }
    }

    func report(id: String) -> CoAPObservationReport? { placement.item(id).map { report(id, $0) } }

    func checkDestination(_ spec: CoAPObservationSpec) throws(IoTError) { try inner.checkDestination(spec) }

    @discardableResult
    func create(_ spec: CoAPObservationSpec) throws(IoTError) -> CoAPObservationReport {
        guard placement.item(spec.id) == nil else {
            throw IoTError(.conflict, "observation \"\(spec.id)\" exists; remove it first or pick another id")
        }
        let tenant = TenantID(spec.tenant)
        if placement.put(spec.id, tenant: tenant, spec).local {
            do {
                try inner.create(spec)
            } catch {
                _ = placement.remove(spec.id)
                throw error
            }
        }
        return report(spec.id, .init(tenant: tenant, spec: spec))
    }

    func remove(id: String) throws(IoTError) {
        guard placement.remove(id) != nil else {
            throw IoTError(.notFound, "no CoAP observation \"\(id)\"; list them with GET /api/v1/coap/observations")
        }
        if inner.report(id: id) != nil { try inner.remove(id: id) }
    }

    /// Observes what this instance owns from now on, and stops what it owns no longer.
    func ownershipChanged(_ ownership: ClusterOwnership) {
        let (gained, lost) = placement.setOwnership(ownership)
        for (id, _) in lost where inner.report(id: id) != nil { try? inner.remove(id: id) }
        for (id, item) in gained where placement.item(id) != nil {  // not removed meanwhile
            do {
                if inner.report(id: id) != nil { try inner.remove(id: id) }
                try inner.create(item.spec)
            } catch {
                logger.error(
                    "a CoAP observation placed on this instance cannot be observed",
                    metadata: ["observation": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Publishes the reports of the observations this instance runs, and reads the others'.
    func sync(_ board: PostgresStatusBoard) async throws {
        try await placement.sync(
            board, instance: instanceID, observedHere().map { (TenantID($0.spec.tenant), $0.spec.id, $0) }
        ) { $1 }
    }
}
