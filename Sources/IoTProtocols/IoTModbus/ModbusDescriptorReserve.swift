internal import CDispatch  // Swift names it as the module of `struct stat` (MemberImportVisibility)
internal import CIoTModbus
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Descriptor numbers below `FD_SETSIZE` (1024) set aside for Modbus connections.
///
/// libmodbus waits on its socket or serial line with `select()`, which cannot take a descriptor of 1024 or
/// more (glibc aborts the process). A process with thousands of MQTT and TCP connections has no free
/// number below 1024 left by the time a Modbus device is (re)connected, so the numbers are taken early:
/// each is a placeholder, `/dev/null` opened read-only and kept open. A connection moves its socket onto a
/// placeholder's number with `dup3` (which replaces the placeholder in one step) and, when it closes, turns
/// the number back into a placeholder the same way, so no other thread can take the number in between.
///
/// The descriptor table is per process, so the reserve is too: ``shared``. It grows (``reserve(_:)``) and
/// never shrinks while the process runs; a process with several Modbus transports gets the largest size
/// any of them asked for, and a connection that finds the reserve empty falls back on a free low number.
package final class ModbusDescriptorReserve: Sendable {
    /// The process's reserve.
    package static let shared = ModbusDescriptorReserve()

    /// The most numbers the reserve holds: half of those below `FD_SETSIZE`, so that other libraries that
    /// wait with `select()` keep room.
    package static let limit = Int(FD_SETSIZE) / 2

    private struct State {
        /// Placeholders ready to be taken.
        var free: [Int32] = []
        /// Numbers taken by connections.
        var lent: Set<Int32> = []
    }

    private let state = Mutex(State())

    package init() {}

    /// Numbers the reserve holds, free and lent.
    package var size: Int { state.withLock { $0.free.count + $0.lent.count } }

    /// Placeholders ready to be taken.
    package var freeCount: Int { state.withLock { $0.free.count } }

    /// The numbers connections hold now.
    package var lentDescriptors: [Int32] { state.withLock { $0.lent.sorted() } }

    /// Grows the reserve to `count` numbers (at most ``limit``), as far as numbers below `FD_SETSIZE` are
    /// free, and returns its size. Never shrinks it.
    @discardableResult
    package func reserve(_ count: Int) -> Int {
        let wanted = min(count, Self.limit)
        return state.withLock { s in
            while s.free.count + s.lent.count < wanted {
                let fd = Self.openPlaceholder()
                guard fd >= 0 else { break }
                guard fd < FD_SETSIZE else {
                    close(fd)
                    break
                }
                s.free.append(fd)
            }
            return s.free.count + s.lent.count
        }
    }

    /// Takes a placeholder's number for a connection; `nil` when none is free. The caller replaces the
    /// placeholder with `dup3` and hands the number back with ``giveBack(_:)``.
    package func take() -> Int32? {
        state.withLock { s in
            guard let fd = s.free.popLast() else { return nil }
            s.lent.insert(fd)
            return fd
        }
    }

    /// Adds a free low number that a connection found (the reserve was empty) to the lent ones, so that
    /// it is kept as a placeholder once the connection closes.
    func adopt(_ fd: Int32) {
        state.withLock { s in _ = s.lent.insert(fd) }
    }

    /// Turns the lent number `fd` back into a placeholder (its socket or serial line is closed by that,
    /// unless another descriptor refers to it) and returns it to the reserve. When no placeholder can be
    /// opened (the process is at its descriptor limit) the number is closed and dropped instead.
    package func giveBack(_ fd: Int32) {
        let placeholder = Self.openPlaceholder()
        let replaced = placeholder >= 0 && ciot_modbus_dup3(placeholder, fd, O_CLOEXEC) == fd
        if placeholder >= 0 { close(placeholder) }
        if !replaced { close(fd) }
        state.withLock { s in
            guard s.lent.remove(fd) != nil else { return }
            if replaced { s.free.append(fd) }
        }
    }

    /// Whether `fd` is a placeholder (`/dev/null`), for tests and checks.
    package static func isPlaceholder(_ fd: Int32) -> Bool {
        var st = stat()
        var null = stat()
        guard fstat(fd, &st) == 0, stat("/dev/null", &null) == 0 else { return false }
        return st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == null.st_rdev
    }

    private static func openPlaceholder() -> Int32 {
        open("/dev/null", O_RDONLY | O_CLOEXEC)
    }
}
