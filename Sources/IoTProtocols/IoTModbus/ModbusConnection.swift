internal import CIoTModbus
import Dispatch
internal import IoTCore
import IoTIO

#if canImport(Glibc)
    import Glibc
#endif

/// One libmodbus context (`modbus_t`): a TCP connection to a device, or a serial line shared by every
/// RTU device on it.
///
/// `@unchecked Sendable` because it is only ever used on one ``ModbusIOThread``: the transport assigns
/// each connection to one I/O thread and calls it only on that thread, so the C context is never touched
/// by two threads (libmodbus contexts are not thread-safe). It is freed once, in
/// ``close()`` / `deinit`.
///
/// libmodbus waits with `select()`, so its descriptor must be below `FD_SETSIZE`: a TCP socket is
/// connected here (not by `modbus_connect`, whose connect waits with `select()` too) and moved onto a
/// number from the ``ModbusDescriptorReserve``, then handed to libmodbus with `modbus_set_socket`; a
/// serial line opened by `modbus_connect` on a number of 1024 or more is moved the same way. Closing turns
/// the number back into a placeholder. libmodbus (3.1.6) closes `ctx->s` only in `modbus_close` and a
/// failed `modbus_connect`, which it calls on its own only with `MODBUS_ERROR_RECOVERY_LINK`, never set here.
final class ModbusConnection: @unchecked Sendable {
    let connection: ModbusDevice.Connection
    private let reserve: ModbusDescriptorReserve
    private var context: OpaquePointer?
    private var connected = false
    private var currentUnit: Int32 = -1
    /// The connection's descriptor when it is on a number of the reserve (returned to it on close).
    private var reserved: Int32?

    init(_ connection: ModbusDevice.Connection, reserve: ModbusDescriptorReserve = .shared) {
        self.connection = connection
        self.reserve = reserve
    }

    deinit { free() }

    /// A readable description of the endpoint.
    var endpoint: String {
        switch connection {
        case .tcp(let host, let port): "tcp://\(host):\(port)"
        case .rtu(let path, let baud, let parity, let stopBits):
            "rtu:\(path)@\(baud)-8\(parity.character == 78 ? "N" : parity.character == 69 ? "E" : "O")\(stopBits)"
        }
    }

    /// Closes the connection; the next call reconnects.
    func close() {
        if let context, connected {
            if let fd = reserved {
                release(fd, context)
            } else {
                modbus_close(context)
            }
        }
        reserved = nil
        connected = false
        currentUnit = -1
    }

    /// Closes the connection on reserved number `fd` and makes `fd` a placeholder again, with no moment
    /// at which the number is free for another thread to take.
    private func release(_ fd: Int32, _ ctx: OpaquePointer) {
        switch connection {
        case .tcp:
            shutdown(fd, Int32(SHUT_RDWR))
            modbus_set_socket(ctx, -1)  // libmodbus must not close the number
            reserve.giveBack(fd)
        case .rtu:
            // modbus_close restores the line's settings: let it close a copy of the descriptor (any
            // number; it does not select() on it) after the reserved number became a placeholder.
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            modbus_set_socket(ctx, -1)
            reserve.giveBack(fd)
            if copy >= 0 {
                modbus_set_socket(ctx, copy)
                modbus_close(ctx)
            }
        }
    }

    private func free() {
        close()
        if let context { modbus_free(context) }
        context = nil
    }

    /// The libmodbus error for the last failed call, as an ``IoTError``; closes the connection unless
    /// the device answered with a Modbus exception (the link itself is fine then).
    private func failure(_ what: String, code: Int32 = ciot_modbus_errno()) -> IoTError {
        let text = String(cString: modbus_strerror(code))
        let exceptionBase = Int32(MODBUS_ENOBASE)
        let isException = code > exceptionBase && code <= exceptionBase + Int32(MODBUS_EXCEPTION_GATEWAY_TARGET)
        if !isException {
            // A timeout can leave a late answer in the socket or line: start afresh next time.
            close()
        }
        let hint =
            isException
            ? "the device refused the request; check the register map's addresses, the table and the unit id"
            : code == ETIMEDOUT
                ? "the device did not answer in time; check that it is on, the unit id and the timeout"
                : "check the connection"
        return IoTError(
            isException ? .invalidArgument : .unavailable, "\(what) at \(endpoint) failed: \(text); \(hint)",
            nativeCode: code, domain: .libmodbus)
    }

    /// libmodbus waits on its socket with `select()`, which cannot take a descriptor of 1024 or more
    /// (glibc aborts the process): a connection for which neither a reserved nor a free number below 1024
    /// is left is refused with this error.
    private func noRoom() -> IoTError {
        IoTError(
            .unavailable,
            "cannot connect to \(endpoint): no file descriptor below \(FD_SETSIZE) is reserved or free, and libmodbus cannot wait on a higher one; raise the Modbus transport's reservedDescriptors (iotd: modbus.reservedDescriptors) so that more are set aside at start, or run Modbus devices in a process with fewer open connections",
            nativeCode: EMFILE, domain: .posix)
    }

    /// Opens the connection: a TCP socket connected here, or libmodbus's serial line, on a number below
    /// `FD_SETSIZE`.
    private func connect(_ ctx: OpaquePointer, timeoutMillis: Int64) throws(IoTError) {
        switch connection {
        case .tcp(let host, let port):
            let socket: Int32
            switch ModbusSocket.connect(host: host, port: port, timeoutMillis: timeoutMillis) {
            case .success(let s): socket = s
            case .failure(let error): throw failure("connecting", code: error.code)
            }
            guard let low = ModbusSocket.moveLow(socket, reserve) else {
                Glibc.close(socket)
                throw noRoom()
            }
            modbus_set_socket(ctx, low)
            reserved = low
        case .rtu:
            guard modbus_connect(ctx) == 0 else { throw failure("connecting") }
            let fd = modbus_get_socket(ctx)
            if fd >= FD_SETSIZE {
                guard let low = ModbusSocket.moveLow(fd, reserve) else {
                    modbus_close(ctx)
                    throw noRoom()
                }
                modbus_set_socket(ctx, low)
                reserved = low
            }
        }
    }

    /// Connects (if needed) and selects `unit`; `timeoutMillis` bounds the connect and each answer.
    private func prepare(unit: Int, timeoutMillis: Int64) throws(IoTError) -> OpaquePointer {
        if context == nil {
            switch connection {
            case .tcp(let host, let port):
                context = modbus_new_tcp_pi(host, String(port))
            case .rtu(let path, let baud, let parity, let stopBits):
                context = modbus_new_rtu(path, Int32(baud), parity.character, 8, Int32(stopBits))
            }
            guard context != nil else { throw failure("creating a libmodbus context") }
        }
        let ctx = context!
        let t = max(1, timeoutMillis)
        modbus_set_response_timeout(ctx, UInt32(t / 1000), UInt32((t % 1000) * 1000))
        if !connected {
            try connect(ctx, timeoutMillis: t)
            connected = true
            currentUnit = -1
        }
        if currentUnit != Int32(unit) {
            guard modbus_set_slave(ctx, Int32(unit)) == 0 else { throw failure("selecting unit \(unit)") }
            currentUnit = Int32(unit)
        }
        return ctx
    }

    /// Reads every request of `plan` and appends the words of each answer to `words`, in the order of the
    /// requests (bits as 0/1). Stops at `deadline` (monotonic ms) with ``IoTError/Code/timeout``; on an
    /// error, part of the answers may have been appended.
    func read(_ plan: ModbusReadPlan, unit: Int, timeoutMillis: Int64, deadline: Int64, into words: inout [UInt16])
        throws(IoTError)
    {
        for (done, request) in plan.requests.enumerated() {
            let remaining = deadline - monotonicMillis()
            guard remaining > 0 else {
                throw IoTError(
                    .timeout, "the poll of \(endpoint) ran out of time after \(done) of \(plan.requests.count) requests"
                )
            }
            let ctx = try prepare(unit: unit, timeoutMillis: min(timeoutMillis, remaining))
            try read(request, ctx, into: &words)
        }
    }

    /// The answer to bit reads, reused from one read to the next (the connection is used on one thread).
    private var bits: [UInt8] = []

    private func read(_ r: ModbusReadPlan.Request, _ ctx: OpaquePointer, into words: inout [UInt16]) throws(IoTError) {
        let address = Int32(r.address)
        let count = Int32(r.count)
        switch r.area {
        case .holdingRegister, .inputRegister:
            let start = words.count
            words.append(contentsOf: repeatElement(0, count: r.count))
            let n = words.withUnsafeMutableBufferPointer { b in
                r.area == .holdingRegister
                    ? modbus_read_registers(ctx, address, count, b.baseAddress! + start)
                    : modbus_read_input_registers(ctx, address, count, b.baseAddress! + start)
            }
            guard n == count else { throw failure("reading \(r.count) \(r.area.rawValue) registers at \(r.address)") }
        case .coil, .discreteInput:
            if bits.count < r.count { bits = [UInt8](repeating: 0, count: r.count) }
            let n = bits.withUnsafeMutableBufferPointer { b in
                r.area == .coil
                    ? modbus_read_bits(ctx, address, count, b.baseAddress)
                    : modbus_read_input_bits(ctx, address, count, b.baseAddress)
            }
            guard n == count else { throw failure("reading \(r.count) \(r.area.rawValue) bits at \(r.address)") }
            words.append(contentsOf: bits[0..<r.count].lazy.map { UInt16($0) })
        }
    }

    /// Writes holding registers (function 6 for one, 16 for several) or coils (5 / 15).
    func write(_ area: ModbusArea, address: Int, words: [UInt16], unit: Int, timeoutMillis: Int64) -> Result<
        Void, IoTError
    > {
        do throws(IoTError) {
            let ctx = try prepare(unit: unit, timeoutMillis: timeoutMillis)
            let a = Int32(address)
            let rc: Int32
            switch (area, words.count) {
            case (.holdingRegister, 1): rc = modbus_write_register(ctx, a, words[0])
            case (.holdingRegister, _):
                rc = words.withUnsafeBufferPointer {
                    modbus_write_registers(ctx, a, Int32(words.count), $0.baseAddress)
                }
            case (.coil, 1): rc = modbus_write_bit(ctx, a, words[0] != 0 ? 1 : 0)
            default:
                let bits = words.map { UInt8($0 != 0 ? 1 : 0) }
                rc = bits.withUnsafeBufferPointer { modbus_write_bits(ctx, a, Int32(bits.count), $0.baseAddress) }
            }
            guard rc >= 0 else { throw failure("writing \(words.count) \(area.rawValue) item(s) at \(address)") }
            return .success(())
        } catch {
            return .failure(error)
        }
    }
}
