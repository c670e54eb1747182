public import IoTCore
internal import Logging

/// Polls one Modbus device: a ``IoTCore/PollingTransport`` whose ``poll()`` reads the device's register
/// map on a dedicated I/O thread and decodes it into one record.
///
/// The base class owns the schedule, the staggered start and the backoff of a device that does not
/// answer. ``ModbusTransport`` creates one poller per device and drives the schedule on the device's
/// I/O thread itself (``IoTCore/PollingTransport/firstPollTime()``,
/// ``IoTCore/PollingTransport/recordSuccess(due:)``, ``IoTCore/PollingTransport/recordFailure(_:)``), so a
/// poll costs no hop between Swift's cooperative pool and the thread; ``poll()`` is the `async` form of
/// the same read, for a caller outside the schedule.
public final class ModbusPoller: PollingTransport, @unchecked Sendable {
    // @unchecked Sendable: every stored property is a `let` of a Sendable type or of `ModbusConnection`,
    // which is only used on `thread` (its schedule and its jobs).
    /// The device as configured.
    public let device: ModbusDevice
    /// The read requests of one poll.
    public let plan: ModbusReadPlan
    let connection: ModbusConnection
    let thread: ModbusIOThread

    init(
        device: ModbusDevice, connection: ModbusConnection, thread: ModbusIOThread, ingestor: Ingestor,
        clock: any IoTClock, logger: Logger
    ) {
        self.device = device
        self.plan = ModbusReadPlan(device.registers, maxGap: device.maxGap)
        self.connection = connection
        self.thread = thread
        let configuration = PollingTransport.Configuration(
            intervalMillis: device.intervalMillis,
            // The read stops itself at the poll's deadline; the base class's timeout is a backstop for `run()`.
            timeoutMillis: Self.pollDeadline(device, requests: plan.requests.count) + 200,
            backoffInitialMillis: device.backoffInitialMillis ?? (device.intervalMillis > 0 ? device.intervalMillis : 1_000),
            backoffMaxMillis: device.backoffMaxMillis,
            startDelayMillis: device.startDelayMillis)
        super.init(
            name: "modbus", identity: device.identity, configuration: configuration, ingestor: ingestor, clock: clock,
            logger: logger)
    }

    static func pollDeadline(_ device: ModbusDevice, requests: Int) -> Int64 {
        device.timeoutMillis * Int64(requests + 1)
    }

    /// Reads every request of ``plan`` and decodes the register map into one record (server time).
    ///
    /// - Throws: ``IoTCore/IoTError``: `unavailable` or `timeout` when the device does not answer,
    ///   `invalidArgument` when it answers with a Modbus exception (wrong address or table), and
    ///   `malformedPayload` when a value cannot be decoded.
    public override func poll() async throws -> [DeviceRecord] {
        let plan = self.plan
        let connection = self.connection
        let unit = device.unitID
        let timeout = device.timeoutMillis
        let deadline = monotonicMillis() + Self.pollDeadline(device, requests: plan.requests.count)
        let words = try await thread.run { connection.read(plan, unit: unit, timeoutMillis: timeout, deadline: deadline) }.get()
        return [try decode(words)]
    }

    /// One scheduled poll, on the I/O thread: reads and decodes the register map, counts the outcome,
    /// and returns when the next poll is due (clock ms) and the record (`nil` when the poll failed).
    func pollOnThread(due: Int64) -> (next: Int64, record: DeviceRecord?) {
        let deadline = monotonicMillis() + Self.pollDeadline(device, requests: plan.requests.count)
        do throws(IoTError) {
            let words = try connection.read(plan, unit: device.unitID, timeoutMillis: device.timeoutMillis, deadline: deadline).get()
            let record = try decode(words)
            return (recordSuccess(due: due), record)
        } catch {
            return (recordFailure(error), nil)
        }
    }

    /// Decodes the words of each request into a record.
    func decode(_ words: [[UInt16]]) throws(IoTError) -> DeviceRecord {
        var values: [String: SignalValue] = [:]
        values.reserveCapacity(device.registers.count)
        for (request, answer) in zip(plan.requests, words) {
            for i in request.registers {
                let register = device.registers[i]
                let start = register.address - request.address
                values[register.signal] = try ModbusCodec.decode(register, words: answer[start..<(start + register.count)])
            }
        }
        return DeviceRecord(deviceUID: device.identity.deviceUID, values: values)
    }

    /// Writes raw words to holding registers, or 0/1 to coils, and returns once the device confirmed.
    func write(_ area: ModbusArea, address: Int, words: [UInt16]) async throws(IoTError) {
        let connection = self.connection
        let unit = device.unitID
        let timeout = device.timeoutMillis
        try await thread.run { connection.write(area, address: address, words: words, unit: unit, timeoutMillis: timeout) }.get()
    }
}
