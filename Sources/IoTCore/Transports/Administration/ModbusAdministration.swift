/// Run-time administration of the polled Modbus devices, as the management API
/// (`/api/v1/tenants/{tenant}/modbus/devices`) needs it: list, add, replace and remove devices, and write
/// their holding registers and coils.
///
/// IoTModbus' `ModbusTransport` is the implementation; the API depends on this protocol only, so that it
/// links no Modbus library.
///
/// ## Implementing Modbus administration
/// - Throw ``IoTError``s: `invalidArgument` (answered 400), `notFound` (404), `conflict` (409),
///   `unavailable` (503), `timeout`, each with a message that says what to do.
/// - ``add(_:)`` and ``replace(_:)`` validate the device (``ModbusDevice/validate()``) before anything
///   changes.
public protocol ModbusAdministration: Sendable {
    /// Every polled device with its status, in the order they were added.
    func devices() -> [ModbusDeviceStatus]
    /// The devices this process polls itself, for its `/metrics` (in a cluster, ``devices()`` lists the others'
    /// as well). The default is ``devices()``.
    func devicesPolledHere() -> [ModbusDeviceStatus]
    /// One device's status, or `nil` when it is not polled.
    func device(_ identity: DeviceIdentity) -> ModbusDeviceStatus?
    /// Adds a device; it is polled at once if the transport runs.
    ///
    /// - Throws: `invalidArgument` (invalid device), `conflict` (the identity is already polled),
    ///   `unavailable` (over the transport's limit).
    func add(_ device: ModbusDevice) throws(IoTError)
    /// Stops polling a device; returns whether it was polled.
    @discardableResult
    func remove(_ identity: DeviceIdentity) async -> Bool
    /// Polls `device` with a new configuration, or adds it; returns whether it was polled before.
    ///
    /// - Throws: what ``add(_:)`` throws; the device keeps its old configuration then.
    @discardableResult
    func replace(_ device: ModbusDevice) async throws(IoTError) -> Bool
    /// Writes `value` to the register map entry of `signal`, encoded with its type, byte order, scale and
    /// offset; returns once the device confirmed the write.
    ///
    /// - Throws: `notFound` (unknown device or signal), `invalidArgument` (a read-only entry),
    ///   `invalidValue` (the value does not fit), `unavailable` / `timeout` (no confirmation).
    func write(_ identity: DeviceIdentity, signal: String, value: SignalValue) async throws(IoTError)
    /// Writes raw values: 16-bit words to holding registers from `address` on, or 0/1 to coils.
    ///
    /// - Throws: `notFound`, `invalidArgument` (a read-only table, a count or address out of range),
    ///   `unavailable` / `timeout`.
    func write(_ identity: DeviceIdentity, area: ModbusArea, address: Int, values: [UInt16]) async throws(IoTError)
}

extension ModbusAdministration {
    /// Every device: a process alone polls them all.
    public func devicesPolledHere() -> [ModbusDeviceStatus] { devices() }
}

/// A polled Modbus device and what its poller has done.
public struct ModbusDeviceStatus: Sendable, Hashable, Codable {
    /// The device's configuration.
    public var device: ModbusDevice
    /// Polls, failures, last error.
    public var polling: PollingTransport.Status
    /// Read requests per poll (contiguous registers share one).
    public var requestsPerPoll: Int
    /// Writes that the device confirmed.
    public var writes: Int
    /// Writes that failed.
    public var writeFailures: Int
    /// In a cluster, the instance that polls the device; `nil` for this process alone.
    public var instance: String?

    /// Creates a status.
    public init(
        device: ModbusDevice, polling: PollingTransport.Status, requestsPerPoll: Int, writes: Int, writeFailures: Int,
        instance: String? = nil
    ) {
        self.device = device
        self.polling = polling
        self.requestsPerPoll = requestsPerPoll
        self.writes = writes
        self.writeFailures = writeFailures
        self.instance = instance
    }
}
