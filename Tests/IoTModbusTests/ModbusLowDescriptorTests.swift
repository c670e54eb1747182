import Dispatch  // re-exports CDispatch, which Swift names as the module of `struct stat`
import IoTCore
import IoTProtocols
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension ModbusTests {
    /// Modbus in a process whose descriptors go past `FD_SETSIZE` (1024), where libmodbus's `select()` would
    /// abort the process: connections use numbers from the ``ModbusDescriptorReserve``.
    ///
    /// These tests push the process's descriptors past 1024 or take every number below it, which would
    /// break other tests running at the same time (libmosquitto and libmodbus wait with `select()`), so
    /// `scripts/test.sh` runs this suite in a phase of its own.
    @Suite(.serialized) struct ModbusLowDescriptorTests {
        static let registers = [ModbusRegister(signal: "v", address: 3)]

        @Test func pollsAndReconnectsOnReservedNumbersPastFDSetSize() async throws {
            let server = try ModbusServer(.libmodbus, specs: ["h:3=1234"])
            defer { server.stop() }
            let device = ModbusTCPTests.device("fd-1", port: server.port, registers: Self.registers, timeout: 300)
            // What iotd does first thing; the transport's init asks for the same again.
            let configuration = ModbusTransport.Configuration(ioThreads: 1, reservedDescriptors: 2)
            #expect(ModbusTransport.reserveDescriptors(configuration: configuration, devices: [device]) >= 3)
            let flood = DescriptorFlood(count: 1_100)
            defer { flood.close() }
            try #require(flood.nextFree() >= FD_SETSIZE, "the flood should leave no number below \(FD_SETSIZE) free")

            let h = try await ModbusHarness(devices: [device], ioThreads: 1, reservedDescriptors: 2)
            _ = try await h.waitFor("fd-1", "a value polled with every low number taken") { $0["v"] == .number(1234) }
            let first = ModbusDescriptorReserve.shared.lentDescriptors
            #expect(first.count == 1, "\(first)")
            for fd in first {
                #expect(fd < FD_SETSIZE)
                #expect(isSocket(fd), "descriptor \(fd) should be the Modbus socket")
            }

            // The peer stops: the connection closes (its number becomes a placeholder again) and the
            // device backs off; the peer comes back: a new socket (above 1024) moves onto a reserved number.
            server.kill9()
            _ = try await h.waitForStatus(device.identity, "failures while the peer is down") {
                $0.polling.consecutiveFailures >= 2
            }
            #expect(ModbusDescriptorReserve.shared.lentDescriptors.isEmpty)
            for fd in first {
                #expect(ModbusDescriptorReserve.isPlaceholder(fd), "descriptor \(fd) after the peer stopped")
            }
            try server.restart()
            _ = try await h.waitForStatus(device.identity, seconds: 15, "recovery") {
                $0.polling.consecutiveFailures == 0
            }
            try await h.modbus.write(device.identity, signal: "v", value: .number(4321))
            _ = try await h.waitFor("fd-1", "the written value, read back after the reconnect") {
                $0["v"] == .number(4321)
            }
            let second = ModbusDescriptorReserve.shared.lentDescriptors
            #expect(second.count == 1, "\(second)")
            for fd in second {
                #expect(fd < FD_SETSIZE)
                #expect(isSocket(fd), "descriptor \(fd) should be the new Modbus socket")
            }
            let status = try #require(h.modbus.device(device.identity))
            #expect(status.writes == 1)

            await h.stop()
            #expect(ModbusDescriptorReserve.shared.lentDescriptors.isEmpty)
            for fd in Set(first + second) {
                #expect(
                    ModbusDescriptorReserve.isPlaceholder(fd),
                    "descriptor \(fd) should be /dev/null again after the transport stopped")
            }
            #expect(h.ingestor.statistics.isBalanced)
        }

        @Test func anRTULineOpenedPastFDSetSizeMovesOntoAReservedNumber() async throws {
            let pair = try SerialPair()
            defer { pair.stop() }
            let peer = try SerialModbusDevice(path: pair.a, baud: 19_200, specs: ["h:3=77"])
            defer { peer.stop() }
            let device = ModbusDevice(
                identity: DeviceIdentity(tenant: ModbusHarness.tenant, deviceUID: "rtu-fd"),
                connection: .rtu(path: pair.b, baud: 19_200, parity: .none), unitID: 1, intervalMillis: 200,
                timeoutMillis: 500, startDelayMillis: 0, backoffMaxMillis: 1_000, registers: Self.registers)
            let configuration = ModbusTransport.Configuration(ioThreads: 1, reservedDescriptors: 2)
            #expect(ModbusTransport.reserveDescriptors(configuration: configuration, devices: [device]) >= 3)
            let flood = DescriptorFlood(count: 1_100)
            defer { flood.close() }
            try #require(flood.nextFree() >= FD_SETSIZE)

            let h = try await ModbusHarness(devices: [device], ioThreads: 1, reservedDescriptors: 2)
            _ = try await h.waitFor("rtu-fd", seconds: 20, "a value over a serial line opened past 1024") {
                $0["v"] == .number(77)
            }
            let lent = ModbusDescriptorReserve.shared.lentDescriptors
            #expect(lent.count == 1, "\(lent)")
            for fd in lent {
                #expect(fd < FD_SETSIZE)
                #expect(isatty(fd) == 1, "descriptor \(fd) should be the serial line")
            }
            await h.stop()
            #expect(ModbusDescriptorReserve.shared.lentDescriptors.isEmpty)
            for fd in lent { #expect(ModbusDescriptorReserve.isPlaceholder(fd)) }
        }

        @Test func aConnectionWithNoLowNumberLeftIsRefusedClearlyAndCounted() async throws {
            let server = try ModbusServer(.libmodbus, specs: ["h:3=7"])
            defer { server.stop() }
            let device = ModbusTCPTests.device("fd-none", port: server.port, registers: Self.registers, timeout: 300)
            // Every reserved number taken, and every free number below 1024 too.
            var taken: [Int32] = []
            while let fd = ModbusDescriptorReserve.shared.take() { taken.append(fd) }
            let flood = DescriptorFlood(upTo: FD_SETSIZE)
            defer {
                flood.close()
                for fd in taken { ModbusDescriptorReserve.shared.giveBack(fd) }
            }
            try #require(flood.nextFree() >= FD_SETSIZE)

            let h = try await ModbusHarness(devices: [device], ioThreads: 1, reservedDescriptors: 0)
            let refused = try await h.waitForStatus(device.identity, "refusals") { $0.polling.failures >= 2 }
            let error = refused.polling.lastError ?? ""
            #expect(error.hasPrefix("unavailable:"), "\(error)")
            #expect(error.contains("no file descriptor below 1024"), "\(error)")
            #expect(error.contains("raise the Modbus transport's reservedDescriptors"), "\(error)")
            #expect(refused.polling.successes == 0)
            #expect(
                ModbusDescriptorReserve.shared.lentDescriptors == taken.sorted(), "only the test's own numbers are out")

            // Numbers free again: the device is polled at its next attempt.
            flood.close()
            for fd in taken { ModbusDescriptorReserve.shared.giveBack(fd) }
            taken = []
            _ = try await h.waitFor("fd-none", "a value once numbers are free") { $0["v"] == .number(7) }
            await h.stop()
        }
    }
}

/// Descriptors on `/dev/null` held by a test to use up numbers, closed by ``close()``.
final class DescriptorFlood {
    private var descriptors: [Int32] = []

    /// Opens `count` descriptors.
    init(count: Int) {
        for _ in 0..<count {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { break }
            descriptors.append(fd)
        }
    }

    /// Opens descriptors until one is numbered `limit` or more (that one is kept too), at most 2 000.
    init(upTo limit: Int32) {
        for _ in 0..<2_000 {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { break }
            descriptors.append(fd)
            if fd >= limit { break }
        }
    }

    /// The number the next descriptor would get.
    func nextFree() -> Int32 {
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        if fd >= 0 { Glibc.close(fd) }
        return fd
    }

    /// Closes them all (again: a no-op).
    func close() {
        for fd in descriptors { Glibc.close(fd) }
        descriptors = []
    }
}

/// Whether `fd` is a socket.
func isSocket(_ fd: Int32) -> Bool {
    var st = stat()
    return fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK
}
