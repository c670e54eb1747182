import IoTCore
import IoTProtocols
import Testing

extension ModbusTests {
    /// The register map's meaning without a device: decoding, encoding and request planning.
    @Suite struct ModbusCodecTests {
        @Test func everyTypeAndByteOrderDecodesAndEncodesBack() throws {
            for c in TypeMatrix().cases {
                #expect(try ModbusCodec.decode(c.register, words: c.words) == c.expected, "\(c.register.signal)")
                if c.register.bit == nil {
                    #expect(try ModbusCodec.encode(c.expected, for: c.register) == c.words, "\(c.register.signal)")
                }
            }
        }

        @Test func byteOrdersMatchTheirNames() throws {
            // 0x11223344 as uint32: ABCD = 1122 3344, CDAB = 3344 1122, BADC = 2211 4433, DCBA = 4433 2211.
            let expected: [ModbusByteOrder: [UInt16]] = [
                .abcd: [0x1122, 0x3344], .cdab: [0x3344, 0x1122], .badc: [0x2211, 0x4433], .dcba: [0x4433, 0x2211],
            ]
            for (order, words) in expected {
                let r = ModbusRegister(signal: "v", address: 0, type: .uint32, byteOrder: order)
                #expect(try ModbusCodec.decode(r, words: words) == .number(Double(0x1122_3344)), "\(order)")
            }
        }

        @Test func wrongInputIsAClearError() {
            let r = ModbusRegister(signal: "v", address: 0, type: .int32)
            #expect(throws: IoTError.self) { try ModbusCodec.decode(r, words: [1]) }
            #expect(throws: IoTError.self) { try ModbusCodec.encode(.number(1e12), for: r) }
            #expect(throws: IoTError.self) { try ModbusCodec.encode(.text("x"), for: r) }
            let s = ModbusRegister(signal: "s", address: 0, type: .string, length: 1)
            #expect(throws: IoTError.self) { try ModbusCodec.encode(.text("abc"), for: s) }
            #expect(throws: IoTError.self) { try ModbusCodec.decode(s, words: [0xFFFE]) }
        }

        @Test func contiguousRegistersShareARequest() {
            let registers = [
                ModbusRegister(signal: "a", address: 0), ModbusRegister(signal: "b", address: 1, type: .float32),
                ModbusRegister(signal: "c", address: 3), ModbusRegister(signal: "d", address: 5),  // gap of 1
                ModbusRegister(signal: "e", area: .inputRegister, address: 3),
                ModbusRegister(signal: "f", area: .coil, address: 7),
                ModbusRegister(signal: "g", area: .coil, address: 8),
                ModbusRegister(signal: "h", address: 130),
            ]
            let plan = ModbusReadPlan(registers)
            #expect(plan.requests.map { [$0.address, $0.count] } == [[0, 4], [5, 1], [130, 1], [3, 1], [7, 2]])
            // With maxGap 1 the gap is read; 0…5 and 130 still need two requests.
            #expect(
                ModbusReadPlan(registers, maxGap: 1).requests.filter { $0.area == .holdingRegister }.map(\.count) == [
                    6, 1,
                ])
            // Never more than 125 registers per request.
            let wide = (0..<300).map { ModbusRegister(signal: "r\($0)", address: $0) }
            #expect(ModbusReadPlan(wide).requests.map(\.count) == [125, 125, 50])
            // Issue 17: a gap of Int.max joins what fits in a request and does not trap.
            #expect(ModbusReadPlan(wide, maxGap: .max).requests.map(\.count) == [125, 125, 50])
        }

        /// Issue 17, item 1: numbers outside their documented ranges are refused by `validate()`, naming the field.
        @Test(arguments: [Int.max, Int.min, -1])
        func settingsOutsideTheirRangesAreRefused(_ value: Int) {
            let registers = [ModbusRegister(signal: "v", address: 0)]
            let base = ModbusDevice(
                identity: DeviceIdentity(tenant: "t", deviceUID: "m"), connection: .tcp(host: "127.0.0.1", port: 502),
                registers: registers)
            #expect(throws: Never.self) { try base.validate() }
            let cases: [(String, (inout ModbusDevice) -> Void)] = [
                ("maxGap", { $0.maxGap = value }),
                ("baud rate", { $0.connection = .rtu(path: "/dev/ttyUSB0", baud: value, parity: .none, stopBits: 1) }),
                ("startDelayMillis", { $0.startDelayMillis = Int64(value) }),
                ("backoffInitialMillis", { $0.backoffInitialMillis = Int64(value) }),
                ("backoffMaxMillis", { $0.backoffMaxMillis = Int64(value) }),
                ("intervalMillis", { $0.intervalMillis = Int64(value) }),
                ("timeoutMillis", { $0.timeoutMillis = Int64(value) }),
            ]
            for (field, change) in cases {
                var d = base
                change(&d)
                #expect {
                    try d.validate()
                } throws: { error in
                    (error as? IoTError)?.message.contains(field) == true
                }
            }
        }
    }
}
