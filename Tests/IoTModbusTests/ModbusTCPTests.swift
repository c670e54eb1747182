import IoTCore
import IoTProtocols
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension ModbusTests {
    /// Modbus TCP against real servers on loopback: the libmodbus simulator (C, built by the test) and a
    /// pymodbus simulated device.
    @Suite struct ModbusTCPTests {
        static func device(
            _ uid: String, port: Int, registers: [ModbusRegister], interval: Int64 = 100, timeout: Int64 = 200
        )
            -> ModbusDevice
        {
            ModbusDevice(
                identity: DeviceIdentity(tenant: ModbusHarness.tenant, deviceUID: uid),
                connection: .tcp(host: "127.0.0.1", port: port), unitID: 1, intervalMillis: interval,
                timeoutMillis: timeout,
                startDelayMillis: 0, backoffMaxMillis: 800, registers: registers)
        }

        @Test(arguments: ModbusServer.Kind.allCases)
        func everyTypeAndByteOrderIsReadAndStored(kind: ModbusServer.Kind) async throws {
            let matrix = TypeMatrix()
            let server = try ModbusServer(kind, specs: matrix.specs)
            defer { server.stop() }
            let device = Self.device("m-1", port: server.port, registers: matrix.registers)
            let h = try await ModbusHarness(devices: [device])
            let values = try await h.waitFor("m-1", "every signal") { $0.count == matrix.cases.count }
            await h.stop()
            for c in matrix.cases {
                #expect(values[c.register.signal] == c.expected, "\(c.register.signal) from \(kind)")
            }
            // Holding 0…31 (ABCD, CDAB), holding 200…201 (a gap: its own request), input 0…31, coils, discrete.
            let status = try #require(h.modbus.device(device.identity))
            #expect(status.requestsPerPoll == 5)
            #expect(status.polling.failures == 0)
            let stats = h.ingestor.statistics
            #expect(stats.rejectedTotal == 0)
            #expect(stats.isBalanced)
        }

        @Test func writesRegistersAndCoilsAsDownlinkAndReadsThemBack() async throws {
            for kind in ModbusServer.Kind.allCases {
                let registers = [
                    ModbusRegister(signal: "setpoint", address: 10, type: .float32, byteOrder: .cdab, scale: 0.5),
                    ModbusRegister(signal: "mode", address: 12, type: .int16),
                    ModbusRegister(signal: "name", address: 20, type: .string, byteOrder: .badc, length: 3),
                    ModbusRegister(signal: "relay", area: .coil, address: 5),
                    ModbusRegister(signal: "measured", area: .inputRegister, address: 0),
                ]
                let server = try ModbusServer(kind, specs: ["h:10=0,0,0", "c:5=0", "i:0=7"])
                defer { server.stop() }
                let device = Self.device("w-1", port: server.port, registers: registers)
                let h = try await ModbusHarness(devices: [device])
                _ = try await h.waitFor("w-1", "first poll") { $0["relay"] == .bool(false) }
                try await h.modbus.write(device.identity, signal: "setpoint", value: .number(42.25))
                try await h.modbus.write(device.identity, signal: "mode", value: .number(-3))
                try await h.modbus.write(device.identity, signal: "name", value: .text("abc"))
                try await h.modbus.write(device.identity, signal: "relay", value: .bool(true))
                let values = try await h.waitFor("w-1", "the written values") {
                    $0["setpoint"] == .number(42.25) && $0["mode"] == .number(-3) && $0["name"] == .text("abc")
                        && $0["relay"] == .bool(true)
                }
                #expect(values["measured"] == .number(7), "\(kind)")
                // Raw form: two holding registers and a coil.
                try await h.modbus.write(device.identity, area: .holdingRegister, address: 12, values: [0xFFFE])
                try await h.modbus.write(device.identity, area: .coil, address: 5, values: [0])
                _ = try await h.waitFor("w-1", "the raw writes") {
                    $0["mode"] == .number(-2) && $0["relay"] == .bool(false)
                }
                // Refused writes: clear errors, nothing sent.
                await #expect(throws: IoTError.self) {
                    try await h.modbus.write(device.identity, signal: "measured", value: .number(1))
                }
                await #expect(throws: IoTError.self) {
                    try await h.modbus.write(device.identity, signal: "mode", value: .number(40_000))
                }
                await #expect(throws: IoTError.self) {
                    try await h.modbus.write(device.identity, signal: "nope", value: .number(1))
                }
                await #expect(throws: IoTError.self) {
                    try await h.modbus.write(device.identity, area: .inputRegister, address: 0, values: [1])
                }
                await #expect(throws: IoTError.self) {
                    try await h.modbus.write(
                        device.identity, area: .holdingRegister, address: 0, values: Array(repeating: 1, count: 124))
                }
                let status = try #require(h.modbus.device(device.identity))
                #expect(status.writes == 6, "\(kind)")
                await h.stop()
            }
        }

        @Test func aDeviceThatStopsAnsweringBacksOffAndComesBack() async throws {
            // libmodbus simulator frozen with SIGSTOP: the connection stays open, requests time out.
            let registers = [ModbusRegister(signal: "v", address: 3)]
            let server = try ModbusServer(.libmodbus, specs: ["h:3=11"])
            defer { server.stop() }
            let other = try ModbusServer(.libmodbus, specs: ["h:3=22"])
            defer { other.stop() }
            let device = Self.device("f-1", port: server.port, registers: registers, interval: 100, timeout: 150)
            let healthy = Self.device("ok-1", port: other.port, registers: registers, interval: 100, timeout: 150)
            let h = try await ModbusHarness(devices: [device, healthy])
            _ = try await h.waitFor("f-1", "first value") { $0["v"] == .number(11) }
            server.freeze()
            let frozenAt = ContinuousClock.now
            _ = try await h.waitForStatus(device.identity, "failures") { $0.polling.consecutiveFailures >= 1 }
            let okBefore = try #require(h.modbus.device(healthy.identity)).polling.successes
            try await Task.sleep(for: .seconds(3))
            let frozen = try #require(h.modbus.device(device.identity))
            // Without backoff 3 s at 100 ms + 150 ms timeouts would be ~12 attempts; with backoff (100, 200,
            // 400, 800, 800 ms) at most ~7.
            #expect(frozen.polling.failures <= 8, "failures while frozen: \(frozen.polling.failures)")
            #expect(frozen.polling.failures >= 3)
            #expect(
                frozen.polling.lastError?.contains("timed out") == true
                    || frozen.polling.lastError?.contains("timeout") == true,
                "\(frozen.polling.lastError ?? "")")
            // The other device did not notice.
            let okAfter = try #require(h.modbus.device(healthy.identity)).polling
            #expect(okAfter.successes - okBefore >= 20)
            #expect(okAfter.consecutiveFailures == 0)
            server.thaw()
            let back = try await h.waitForStatus(device.identity, "recovery") { $0.polling.consecutiveFailures == 0 }
            #expect(back.polling.lastSuccessAt != nil)
            #expect(ContinuousClock.now - frozenAt < .seconds(8))
            await h.stop()
        }

        @Test func aPymodbusDeviceThatIsKilledAndRestartedIsPolledAgain() async throws {
            let server = try ModbusServer(.pymodbus, specs: ["h:0=5"])
            defer { server.stop() }
            let device = Self.device("p-1", port: server.port, registers: [ModbusRegister(signal: "v", address: 0)])
            let h = try await ModbusHarness(devices: [device])
            _ = try await h.waitFor("p-1", "first value") { $0["v"] == .number(5) }
            server.kill9()
            _ = try await h.waitForStatus(device.identity, "failures") { $0.polling.consecutiveFailures >= 2 }
            try server.restart()
            let back = try await h.waitForStatus(device.identity, seconds: 15, "recovery") {
                $0.polling.consecutiveFailures == 0
            }
            #expect(back.polling.failures >= 2)
            let before = back.polling.successes
            _ = try await h.waitForStatus(device.identity, "polls after recovery") {
                $0.polling.successes >= before + 3
            }
            await h.stop()
        }

        @Test func badRegistersAndBadDataAreClearErrorsThatDoNotDisturbOtherDevices() async throws {
            let server = try ModbusServer(.libmodbus, specs: ["h:0=1", "h:50=0xFFFE,0xC0C1"])
            defer { server.stop() }
            let good = Self.device("good", port: server.port, registers: [ModbusRegister(signal: "v", address: 0)])
            // Address 20 000 is past the simulator's 10 000 registers: Modbus exception 2.
            let badAddress = Self.device(
                "bad-address", port: server.port, registers: [ModbusRegister(signal: "v", address: 20_000)])
            // Bytes FF FE C0 C1 are not UTF-8.
            let badText = Self.device(
                "bad-text", port: server.port,
                registers: [ModbusRegister(signal: "s", address: 50, type: .string, length: 2)])
            // Tenant `strict` knows only signal `known`: the record is rejected by the ingestor and counted.
            var unknownSignal = Self.device(
                "s-1", port: server.port, registers: [ModbusRegister(signal: "unknown", address: 0)])
            unknownSignal.identity.tenant = ModbusHarness.strict
            let h = try await ModbusHarness(devices: [good, badAddress, badText, unknownSignal])
            let a = try await h.waitForStatus(badAddress.identity, "exception") { $0.polling.failures >= 2 }
            #expect(a.polling.lastError?.contains("Illegal data address") == true, "\(a.polling.lastError ?? "")")
            #expect(a.polling.lastError?.contains("check the register map") == true)
            let t = try await h.waitForStatus(badText.identity, "malformed") { $0.polling.failures >= 2 }
            #expect(t.polling.lastError?.contains("malformed_payload") == true, "\(t.polling.lastError ?? "")")
            _ = try await h.waitForStatus(unknownSignal.identity, "polls") { $0.polling.successes >= 2 }
            // A poll counts as a success when its read returns; the ingestor's refusal of the record follows on
            // the ingest path, a moment later under load.
            let deadline = ContinuousClock.now + .seconds(5)
            while (h.ingestor.statistics.rejected["unknown_signal"] ?? 0) < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect((h.ingestor.statistics.rejected["unknown_signal"] ?? 0) >= 2)
            let goodStatus = try await h.waitForStatus(good.identity, "polls") { $0.polling.successes >= 10 }
            #expect(goodStatus.polling.failures == 0)
            #expect(try await h.latest("good")["v"] == .number(1))
            await h.stop()
            #expect(h.ingestor.statistics.isBalanced)
        }

        @Test func invalidConfigurationIsRefusedWithAClearError() async throws {
            let cases: [(ModbusDevice, String)] = [
                (Self.device("x", port: 502, registers: []), "no registers"),
                (
                    Self.device(
                        "x", port: 502, registers: [ModbusRegister(signal: "a", area: .coil, address: 0, type: .int16)]),
                    "bits"
                ),
                (
                    Self.device(
                        "x", port: 502, registers: [ModbusRegister(signal: "a", address: 65_535, type: .int32)]),
                    "outside"
                ),
                (
                    Self.device(
                        "x", port: 502, registers: [ModbusRegister(signal: "a", address: 0, type: .string, length: 200)]
                    ), "string length"
                ),
                (
                    Self.device(
                        "x", port: 502,
                        registers: [ModbusRegister(signal: "a", address: 0), ModbusRegister(signal: "a", address: 1)]),
                    "mapped twice"
                ),
            ]
            for (device, text) in cases {
                let error = #expect(throws: IoTError.self) { try device.validate() }
                #expect(error?.message.contains(text) == true, "\(error?.message ?? "")")
                #expect(error?.code == .invalidArgument)
            }
        }
    }
}
