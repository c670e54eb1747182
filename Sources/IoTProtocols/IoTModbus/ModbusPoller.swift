public import IoTCore
import IoTIO
internal import Logging

/// Polls one Modbus device: a ``IoTCore/PollingTransport`` whose ``poll()`` reads the device's register
/// map on a dedicated I/O thread and decodes it into one record. On the transport's schedule the thread
/// only reads, and the transport's ingest task decodes.
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
    /// Where each register's words start in the words of a poll (the answers of ``plan``'s requests one
    /// after another), by index into the register map.
    private let offsets: [Int]
    /// The registers whose decode can fail (text that must be UTF-8): the I/O thread checks them, so a
    /// bad value fails the poll there; every other register always decodes.
    private let checked: [Int]

    init(
        device: ModbusDevice, connection: ModbusConnection, thread: ModbusIOThread, gateway: any IngestGateway,
        clock: any IoTClock, logger: Logger
    ) {
        self.device = device
        let plan = ModbusReadPlan(device.registers, maxGap: device.maxGap)
        self.plan = plan
        var offsets = [Int](repeating: 0, count: device.registers.count)
        var base = 0
        for request in plan.requests {
            for i in request.registers { offsets[i] = base + device.registers[i].address - request.address }
            base += request.count
        }
        self.offsets = offsets
        self.checked = device.registers.indices.filter { device.registers[$0].type == .string }
        self.connection = connection
        self.thread = thread
        let configuration = PollingTransport.Configuration(
            interval: .milliseconds(device.intervalMillis),
            // The read stops itself at the poll's deadline; the base class's timeout is a backstop for `run()`.
            timeout: .milliseconds(Self.pollDeadline(device, requests: plan.requests.count) + 200),
            backoffInitial: .milliseconds(
                device.backoffInitialMillis ?? (device.intervalMillis > 0 ? device.intervalMillis : 1_000)),
            backoffMax: .milliseconds(device.backoffMaxMillis),
            startDelay: device.startDelayMillis.map { .milliseconds($0) })
        super.init(
            name: "modbus", identity: device.identity, configuration: configuration, gateway: gateway, clock: clock,
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
        let words = try await thread.run {
            Result { () throws(IoTError) -> [UInt16] in
                var words: [UInt16] = []
                try connection.read(plan, unit: unit, timeoutMillis: timeout, deadline: deadline, into: &words)
                return words
            }
        }.get()
        return [try decode(words, from: 0)]
    }

    /// One scheduled poll, on the I/O thread: reads the register map, appends its words to `words` (the
    /// thread's batch), checks the values that can be malformed, counts the outcome, and returns when the
    /// next poll is due (clock ms) and whether the words were appended (not when the poll failed).
    /// ``decode(_:from:)`` turns them into the record later, on the ingest task, off the thread.
    func pollOnThread(due: Int64, into words: inout [UInt16]) -> (next: Int64, polled: Bool) {
        let base = words.count
        let deadline = monotonicMillis() + Self.pollDeadline(device, requests: plan.requests.count)
        do throws(IoTError) {
            try connection.read(
                plan, unit: device.unitID, timeoutMillis: device.timeoutMillis, deadline: deadline, into: &words)
            for i in checked { _ = try value(i, words, from: base) }
            return (recordSuccess(due: due), true)
        } catch {
            words.removeSubrange(base...)
            return (recordFailure(error), false)
        }
    }

    /// Decodes the words of one poll, starting at `base` in `words`, into a record.
    func decode(_ words: [UInt16], from base: Int) throws(IoTError) -> DeviceRecord {
        var values: [String: SignalValue] = [:]
        values.reserveCapacity(device.registers.count)
        for i in device.registers.indices {
            values[device.registers[i].signal] = try value(i, words, from: base)
        }
        return DeviceRecord(deviceUID: device.identity.deviceUID, values: values)
    }

    /// The value of register `i` from the words of a poll that start at `base`.
    private func value(_ i: Int, _ words: [UInt16], from base: Int) throws(IoTError) -> SignalValue {
        let start = base + offsets[i]
        return try ModbusCodec.decode(device.registers[i], words: words[start..<(start + device.registers[i].count)])
    }

    /// Writes raw words to holding registers, or 0/1 to coils, and returns once the device confirmed.
    func write(_ area: ModbusArea, address: Int, words: [UInt16]) async throws(IoTError) {
        let connection = self.connection
        let unit = device.unitID
        let timeout = device.timeoutMillis
        try await thread.run {
            connection.write(area, address: address, words: words, unit: unit, timeoutMillis: timeout)
        }.get()
    }
}
