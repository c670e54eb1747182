internal import CIoTModbus
import IoTIO

#if canImport(Glibc)
    import Glibc
#endif

/// The descriptor work around libmodbus: the TCP connect that `modbus_connect` would do, without its
/// `select()`, and moving a descriptor onto a number below `FD_SETSIZE`.
enum ModbusSocket {
    /// `IPTOS_LOWDELAY` (`<netinet/ip.h>`, which Glibc's Swift module leaves out); libmodbus sets it too.
    private static let lowDelay: Int32 = 0x10

    /// Resolves `host` and connects to the first address that answers, as libmodbus's `modbus_connect`
    /// does (`getaddrinfo` with `AI_ADDRCONFIG`, a non-blocking `SOCK_CLOEXEC` socket, `TCP_NODELAY`,
    /// `IPTOS_LOWDELAY` on IPv4), but waits for the connect with `poll()`, which takes any descriptor
    /// number. Gives up after `timeoutMillis` in all. Returns the socket (still non-blocking, as libmodbus
    /// keeps it) or the `errno` of the last failure.
    static func connect(host: String, port: Int, timeoutMillis: Int64) -> Result<Int32, Failure> {
        var hints = addrinfo()
        hints.ai_flags = AI_ADDRCONFIG
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = ciot_modbus_sock_stream()
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            return .failure(Failure(code: ECONNREFUSED))  // libmodbus reports a failed lookup the same way
        }
        defer { freeaddrinfo(list) }
        let deadline = monotonicMillis() + max(1, timeoutMillis)
        var lastError = ECONNREFUSED
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let ai = next {
            next = ai.pointee.ai_next
            let s = socket(
                ai.pointee.ai_family, ai.pointee.ai_socktype | ciot_modbus_sock_nonblock_cloexec(),
                ai.pointee.ai_protocol)
            guard s >= 0 else {
                lastError = errno
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if ai.pointee.ai_family == AF_INET {
                var tos = lowDelay
                _ = setsockopt(s, Int32(IPPROTO_IP), IP_TOS, &tos, socklen_t(MemoryLayout<Int32>.size))
            }
            let code = connect(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen, deadline: deadline)
            if code == 0 { return .success(s) }
            close(s)
            lastError = code
            if code == ETIMEDOUT { break }
        }
        return .failure(Failure(code: lastError))
    }

    /// The `errno` of a failed connect.
    struct Failure: Error {
        var code: Int32
    }

    /// A non-blocking connect of `s`, waited for with `poll()` until `deadline` (monotonic ms); 0 or `errno`.
    private static func connect(
        _ s: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: socklen_t, deadline: Int64
    ) -> Int32 {
        if Glibc.connect(s, address, length) == 0 { return 0 }
        guard errno == EINPROGRESS else { return errno }
        while true {
            let remaining = deadline - monotonicMillis()
            guard remaining > 0 else { return ETIMEDOUT }
            var ready = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
            let n = poll(&ready, 1, Int32(min(remaining, 60_000)))
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return ETIMEDOUT }
            var failure: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(s, SOL_SOCKET, SO_ERROR, &failure, &size) == 0 else { return errno }
            return failure
        }
    }

    /// Moves descriptor `fd` onto a number below `FD_SETSIZE`, for libmodbus's `select()`: a reserved
    /// number from `reserve` when one is free (the placeholder is replaced in one step and `fd` closed);
    /// else `fd` itself when it is low already (kept as a placeholder once closed, see
    /// ``ModbusDescriptorReserve/adopt(_:)``). Returns `nil`, with `fd` left open, when there is neither.
    static func moveLow(_ fd: Int32, _ reserve: ModbusDescriptorReserve) -> Int32? {
        if let low = reserve.take() {
            if ciot_modbus_dup3(fd, low, O_CLOEXEC) == low {
                close(fd)
                return low
            }
            reserve.giveBack(low)  // should not happen: both numbers are open
        }
        guard fd < FD_SETSIZE else { return nil }
        reserve.adopt(fd)
        return fd
    }
}
