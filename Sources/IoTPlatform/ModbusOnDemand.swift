public import IoTCore
public import IoTModbus
public import ServiceLifecycle
import Synchronization

/// The platform's Modbus poller: the one `modbus:` configures, or one made the first time a device is added
/// (through the management API, or restored from an earlier run), so that `…/modbus/devices` answers without a
/// `modbus:` section while a platform that polls nothing starts no Modbus threads.
///
/// It runs as a `Service` that idles until there is a poller, then runs it until graceful shutdown. A poller made
/// late sets aside descriptor numbers below 1024 only from what is still free then: for thousands of devices,
/// give a `modbus:` section so that they are set aside first.
public final class ModbusOnDemand: Service, ModbusAdministration {
    private struct State {
        var transport: ModbusTransport?
        var stopped = false
    }
    private let state: Mutex<State>
    private let make: @Sendable () throws(IoTError) -> ModbusTransport
    private let created: AsyncStream<ModbusTransport>
    private let announce: AsyncStream<ModbusTransport>.Continuation

    /// - Parameters:
    ///   - transport: the poller of the configuration, made now; `nil` to make one on first use.
    ///   - make: makes the poller on first use.
    init(transport: ModbusTransport?, make: @escaping @Sendable () throws(IoTError) -> ModbusTransport) {
        state = Mutex(State(transport: transport))
        self.make = make
        (created, announce) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        if let transport { announce.yield(transport) }
    }

    /// The poller, once there is one.
    public var transport: ModbusTransport? { state.withLock { $0.transport } }

    /// Runs the poller once there is one, until graceful shutdown or cancellation.
    public func run() async throws {
        var next = created.makeAsyncIterator()
        let transport = await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await next.next()
            } onCancel: { [announce] in
                announce.finish()
            }
        } onGracefulShutdown: {
            self.stopAccepting()
        }
        guard let transport else { return }
        try await transport.run()
    }

    /// No poller is made from now on (one made now would never run).
    private func stopAccepting() {
        state.withLock { $0.stopped = true }
        announce.finish()
    }

    private func existingOrNew() throws(IoTError) -> ModbusTransport {
        try state.withLock { (s: inout State) throws(IoTError) -> ModbusTransport in
            if let transport = s.transport { return transport }
            guard !s.stopped else {
                throw IoTError(.unavailable, "the platform is stopping; add the Modbus device after it restarts")
            }
            let transport = try make()
            s.transport = transport
            announce.yield(transport)
            return transport
        }
    }

    // MARK: ModbusAdministration

    /// Every polled device with its status; none before there is a poller.
    public func devices() -> [ModbusDeviceStatus] { transport?.devices() ?? [] }

    /// One device's status, or `nil` when it is not polled.
    public func device(_ identity: DeviceIdentity) -> ModbusDeviceStatus? { transport?.device(identity) }

    /// Adds a device to the poller, making the poller first if there is none.
    public func add(_ device: ModbusDevice) throws(IoTError) {
        try existingOrNew().add(device)
    }

    /// Stops polling a device; returns whether it was polled.
    @discardableResult
    public func remove(_ identity: DeviceIdentity) async -> Bool {
        await transport?.remove(identity) ?? false
    }

    /// Polls `device` with a new configuration, or adds it (making the poller first if there is none).
    @discardableResult
    public func replace(_ device: ModbusDevice) async throws(IoTError) -> Bool {
        try await existingOrNew().replace(device)
    }

    /// Writes `value` to the register map entry of `signal` of a polled device.
    public func write(_ identity: DeviceIdentity, signal: String, value: SignalValue) async throws(IoTError) {
        try await polling(identity).write(identity, signal: signal, value: value)
    }

    /// Writes raw values to a polled device's holding registers or coils.
    public func write(_ identity: DeviceIdentity, area: ModbusArea, address: Int, values: [UInt16])
        async throws(IoTError)
    {
        try await polling(identity).write(identity, area: area, address: address, values: values)
    }

    private func polling(_ identity: DeviceIdentity) throws(IoTError) -> ModbusTransport {
        guard let transport else {
            throw IoTError(.notFound, "no Modbus device \"\(identity.deviceUID)\" is polled in this tenant")
        }
        return transport
    }
}
