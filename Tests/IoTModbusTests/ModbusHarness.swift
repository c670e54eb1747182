import IoTCore
import IoTProtocols
import IoTTesting
import Logging
import Synchronization
import Testing

/// Every Modbus suite, one after the other: the suites start real peer processes, and a child that
/// inherits another test's pipe would hold it open.
@Suite(.serialized) enum ModbusTests {}

/// A running ``ModbusTransport`` over an ``IngestHarness`` (in-memory stores) with two tenants of its own.
final class ModbusHarness: Sendable {
    static let tenant: TenantID = "plant"
    static let strict: TenantID = "strict"
    let ingest: IngestHarness
    let modbus: ModbusTransport
    var registry: any RegistryStore { ingest.registry }
    var points: any PointStore { ingest.points }
    var journal: any Journal { ingest.journal }
    var ingestor: Ingestor { ingest.ingestor }

    /// Tenant `plant` registers unknown devices (product `meter`) and signals; tenant `strict` rejects both
    /// and has device `s-1` of product `fixed` with the single signal `known`.
    init(devices: [ModbusDevice], ioThreads: Int = 2, reservedDescriptors: Int = 8) async throws {
        let registry = InMemoryRegistryStore()
        try await registry.saveTenant(
            Tenant(
                id: Self.tenant,
                policy: IngestPolicy(unknownDevices: .register(product: "meter"), unknownSignals: .register)))
        try await registry.saveProduct(.tenant(Self.tenant), Product(id: "meter"))
        try await registry.saveTenant(Tenant(id: Self.strict))
        try await registry.saveProduct(.tenant(Self.strict), Product(id: "fixed", signals: [Signal(name: "known")]))
        try await registry.saveDevice(.tenant(Self.strict), Device(uid: "s-1", product: "fixed"))
        ingest = try await IngestHarness(registry: registry, systemClock: true, start: false)
        let modbus = try ModbusTransport(
            configuration: .init(ioThreads: ioThreads, reservedDescriptors: reservedDescriptors), devices: devices,
            ingestor: ingest.ingestor, logger: Logger(label: "test"))
        self.modbus = modbus
        try await ingest.start([modbus])
    }

    func stop() async {
        await ingest.stop()
    }

    /// The latest stored value of each signal of `device`.
    func latest(_ device: String, tenant: TenantID = ModbusHarness.tenant) async throws -> [String: SignalValue] {
        let points = try await self.points.latest(.tenant(tenant), device: device, signals: nil)
        return Dictionary(points.map { ($0.signal, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    /// Waits (up to `seconds`) until `condition` holds for the latest values of `device`.
    func waitFor(
        _ device: String, seconds: Double = 10, _ what: String,
        _ condition: ([String: SignalValue]) -> Bool
    ) async throws -> [String: SignalValue] {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let values = try await latest(device)
            if condition(values) { return values }
            try await Task.sleep(for: .milliseconds(20))
        }
        let values = try await latest(device)
        Issue.record("timed out waiting for \(what) on \(device); latest values: \(values)")
        return values
    }

    /// Waits until `condition` holds for the transport's status of `device`.
    func waitForStatus(
        _ device: DeviceIdentity, seconds: Double = 10, _ what: String,
        _ condition: (ModbusTransport.DeviceStatus) -> Bool
    ) async throws -> ModbusTransport.DeviceStatus {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let s = modbus.device(device), condition(s) { return s }
            try await Task.sleep(for: .milliseconds(20))
        }
        let s = try #require(modbus.device(device))
        Issue.record("timed out waiting for \(what) on \(device); status: \(s.polling)")
        return s
    }
}

/// The test's own statement of the four byte orders, independent of ``ModbusCodec``: for a value whose
/// bytes are `b[0]` (most significant) … `b[n-1]`, the words on the wire.
func wireWords(_ b: [UInt8], _ order: ModbusByteOrder) -> [UInt16] {
    let n = b.count
    return (0..<(n / 2)).map { i in
        switch order {
        case .abcd: UInt16(b[2 * i]) << 8 | UInt16(b[2 * i + 1])
        case .cdab: UInt16(b[n - 2 - 2 * i]) << 8 | UInt16(b[n - 1 - 2 * i])
        case .badc: UInt16(b[2 * i + 1]) << 8 | UInt16(b[2 * i])
        case .dcba: UInt16(b[n - 1 - 2 * i]) << 8 | UInt16(b[n - 2 - 2 * i])
        }
    }
}

func bigEndianBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
}

/// One value of every type in every byte order, laid out in registers, plus bits; what the servers
/// are loaded with and what the register map expects.
struct TypeMatrix {
    struct Case {
        var register: ModbusRegister
        var words: [UInt16]
        var expected: SignalValue
    }
    var cases: [Case] = []

    /// ABCD and CDAB in holding registers from 0, BADC and DCBA in input registers from 0, a scaled value
    /// at holding 200 (not contiguous: its own request), coils 0–3 and discrete inputs 0–1.
    init() {
        var next: [ModbusArea: Int] = [.holdingRegister: 0, .inputRegister: 0]
        for order in ModbusByteOrder.allCases {
            let area: ModbusArea = (order == .abcd || order == .cdab) ? .holdingRegister : .inputRegister
            func add(_ type: ModbusDataType, _ bytes: [UInt8], _ expected: SignalValue, length: Int = 1) {
                let words: [UInt16]
                if type == .string {
                    // Text order; BADC/DCBA put each register's low byte first.
                    words = stride(from: 0, to: bytes.count, by: 2).map { i in
                        order == .badc || order == .dcba
                            ? UInt16(bytes[i + 1]) << 8 | UInt16(bytes[i])
                            : UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
                    }
                } else {
                    words = wireWords(bytes, order)
                }
                let r = ModbusRegister(
                    signal: "\(type.rawValue)_\(order.rawValue)", area: area, address: next[area]!, type: type,
                    byteOrder: order, length: length)
                next[area]! += words.count
                cases.append(Case(register: r, words: words, expected: expected))
            }
            add(.int16, bigEndianBytes(Int16(-1234)), .number(-1234))
            add(.uint16, bigEndianBytes(UInt16(54321)), .number(54321))
            add(.int32, bigEndianBytes(Int32(-123_456_789)), .number(-123_456_789))
            add(.uint32, bigEndianBytes(UInt32(3_000_000_000)), .number(3_000_000_000))
            add(.float32, bigEndianBytes(Float(-1234.5625).bitPattern), .number(-1234.5625))
            add(.float64, bigEndianBytes((1234567.891).bitPattern), .number(1234567.891))
            add(.string, Array("PUMP-7\0\0".utf8), .text("PUMP-7"), length: 4)
        }
        cases.append(
            Case(
                register: ModbusRegister(signal: "scaled", address: 200, type: .int16, scale: 0.1, offset: -1),
                words: [215], expected: .number(215 * 0.1 - 1)))
        cases.append(
            Case(
                register: ModbusRegister(signal: "flag_bit3", address: 201, type: .bool, bit: 3), words: [0b1000],
                expected: .bool(true)))
        for (i, on) in [true, false, true, true].enumerated() {
            cases.append(
                Case(
                    register: ModbusRegister(signal: "coil\(i)", area: .coil, address: i), words: [on ? 1 : 0],
                    expected: .bool(on)))
        }
        for (i, on) in [false, true].enumerated() {
            cases.append(
                Case(
                    register: ModbusRegister(signal: "input\(i)", area: .discreteInput, address: i),
                    words: [on ? 1 : 0], expected: .bool(on)))
        }
    }

    var registers: [ModbusRegister] { cases.map(\.register) }

    /// Server arguments: `h:ADDR=V,…` etc., one per case.
    var specs: [String] {
        cases.map { c in
            let area =
                switch c.register.area {
                case .holdingRegister: "h"
                case .inputRegister: "i"
                case .coil: "c"
                case .discreteInput: "d"
                }
            return "\(area):\(c.register.address)="
                + c.words.map { "0x" + String($0, radix: 16) }.joined(separator: ",")
        }
    }
}
