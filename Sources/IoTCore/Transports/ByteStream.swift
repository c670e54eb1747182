import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A bidirectional byte stream: a serial line, a socket, a pipe. ``StreamTransport`` reads frames from it.
///
/// ## Implementing a byte stream
/// - ``read()`` returns the next bytes available (any number, at least one) or `nil` at end of stream.
/// - Blocking system calls run on their own thread, never on Swift's cooperative pool.
/// - ``close()`` makes a pending ``read()`` return `nil` or throw.
public protocol ByteStream: Sendable {
    /// The next bytes, or `nil` at end of stream.
    func read() async throws -> [UInt8]?
    /// Writes all of `bytes`.
    func write(_ bytes: [UInt8]) async throws
    /// Closes the stream.
    func close() async
}

/// A ``ByteStream`` over a file descriptor: a serial device opened with `open(2)`, a socket, a pipe,
/// a pseudo-terminal. Reads and writes block on their own dispatch queues.
///
/// `@unchecked Sendable`: the descriptor is an immutable integer; closing is guarded by `closeOnce`
/// so it happens once; `read`/`write` on one descriptor from two threads are safe system calls.
public final class FileDescriptorStream: ByteStream, @unchecked Sendable {
    /// The descriptor, owned by this stream (closed by ``close()`` or on deinit).
    public let descriptor: Int32
    private let readQueue = DispatchQueue(label: "iot.fdstream.read")
    private let writeQueue = DispatchQueue(label: "iot.fdstream.write")
    private let closeOnce = CloseOnce()
    private let readSize: Int

    /// Wraps an open descriptor; the stream owns it from now on.
    public init(descriptor: Int32, readSize: Int = 65_536) {
        self.descriptor = descriptor
        self.readSize = readSize
    }

    deinit { if closeOnce.claim() { Glibc.close(descriptor) } }

    public func read() async throws -> [UInt8]? {
        let fd = descriptor
        let size = readSize
        let closed = closeOnce
        return try await withCheckedThrowingContinuation { continuation in
            readQueue.async {
                var buffer = [UInt8](repeating: 0, count: size)
                while true {
                    // Wait in slices, so close() ends a pending read on any descriptor: shutdown(2) wakes
                    // sockets, but nothing wakes a read(2) blocked on a tty or a pipe.
                    if closed.isClaimed {
                        continuation.resume(returning: nil)
                        return
                    }
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    let ready = poll(&p, 1, 100)
                    if ready == 0 || (ready < 0 && errno == EINTR) { continue }
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, size) }
                    if n > 0 {
                        buffer.removeLast(size - n)
                        continuation.resume(returning: buffer)
                    } else if n == 0 {
                        continuation.resume(returning: nil)
                    } else if errno == EINTR {
                        continue
                    } else if errno == EBADF || errno == EIO {
                        continuation.resume(returning: nil)
                    } else {
                        continuation.resume(
                            throwing: IoTError(
                                .unavailable, "read failed: \(String(cString: strerror(errno)))", nativeCode: errno,
                                domain: .posix))
                    }
                    return
                }
            }
        }
    }

    public func write(_ bytes: [UInt8]) async throws {
        let fd = descriptor
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            writeQueue.async {
                var done = 0
                while done < bytes.count {
                    let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        continuation.resume(
                            throwing: IoTError(
                                .unavailable, "write failed: \(String(cString: strerror(errno)))", nativeCode: errno,
                                domain: .posix))
                        return
                    }
                    done += n
                }
                continuation.resume()
            }
        }
    }

    public func close() async {
        // shutdown wakes a blocked read on sockets; a pending read on anything else sees the flag within
        // 100 ms. The descriptor is released on the read queue, after that read, so its number cannot be
        // reused under it.
        if closeOnce.claim() {
            _ = shutdown(descriptor, Int32(SHUT_RDWR))
            let fd = descriptor
            readQueue.async { _ = Glibc.close(fd) }
        }
    }
}

private final class CloseOnce: Sendable {
    private let done = Mutex(false)
    var isClaimed: Bool { done.withLock { $0 } }
    func claim() -> Bool {
        done.withLock { d in
            if d { return false }
            d = true
            return true
        }
    }
}
