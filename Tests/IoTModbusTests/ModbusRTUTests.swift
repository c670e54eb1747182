import IoTCore
import IoTProtocols
import IoTTesting
import Testing

extension ModbusTests {
    /// Modbus RTU: a pymodbus serial device on one end of a `socat` pseudo-terminal pair, the transport on
    /// the other. Two unit ids share the line (and its one libmodbus context).
    @Suite struct ModbusRTUTests {
        @Test func readsAndWritesOverASerialLine() async throws {
            let pair = try SerialPair()
            defer { pair.stop() }
            let matrix = TypeMatrix()
            // Pseudo-terminals refuse pyserial's parity settings (EINVAL), so the line runs 8N1 at 19 200 baud.
            let peer = try SerialModbusDevice(path: pair.a, baud: 19_200, specs: matrix.specs)
            defer { peer.stop() }
            func device(_ uid: String, unit: Int, registers: [ModbusRegister]) -> ModbusDevice {
                ModbusDevice(
                    identity: DeviceIdentity(tenant: ModbusHarness.tenant, deviceUID: uid),
                    connection: .rtu(path: pair.b, baud: 19_200, parity: .none), unitID: unit, intervalMillis: 300,
                    timeoutMillis: 500, startDelayMillis: 0, backoffMaxMillis: 1_000, registers: registers)
            }
            let first = device("rtu-1", unit: 1, registers: matrix.registers)
            let second = device(
                "rtu-2", unit: 2,
                registers: [ModbusRegister(signal: "scaled", address: 200, type: .int16, scale: 0.1, offset: -1)])
            let h = try await ModbusHarness(devices: [first, second])
            let values = try await h.waitFor("rtu-1", seconds: 20, "every signal over RTU") {
                $0.count == matrix.cases.count
            }
            for c in matrix.cases {
                #expect(values[c.register.signal] == c.expected, "\(c.register.signal) over RTU")
            }
            _ = try await h.waitFor("rtu-2", seconds: 10, "the second unit") { $0["scaled"] == .number(215 * 0.1 - 1) }
            try await h.modbus.write(first.identity, signal: "int16_ABCD", value: .number(-7))
            _ = try await h.waitFor("rtu-1", seconds: 10, "the write over RTU") { $0["int16_ABCD"] == .number(-7) }
            // A device on the same path with other line settings is refused.
            var clash = device("rtu-3", unit: 3, registers: [ModbusRegister(signal: "x", address: 0)])
            clash.connection = .rtu(path: pair.b, baud: 9_600, parity: .even)
            let error = #expect(throws: IoTError.self) { try h.modbus.add(clash) }
            #expect(error?.message.contains("shares baud") == true)
            await h.stop()
            #expect(h.ingestor.statistics.rejectedTotal == 0)
        }
    }
}
