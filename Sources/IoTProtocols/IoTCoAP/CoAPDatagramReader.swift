import CIoTCoAP
import CIoTLinux

#if canImport(Glibc)
    import Glibc
#endif

/// The CoAP I/O thread's wait: libcoap's own two steps (`coap_io_prepare_epoll`, `epoll_wait` on the
/// context's descriptor, `coap_io_do_epoll`; "method 2" of `coap_io(3)`), with several datagrams read per
/// wait while they are queued.
///
/// `coap_io_process` reads one datagram per `epoll_wait` and re-arms libcoap's timer descriptor twice for
/// it (`timerfd_settime` before the wait and at the end of `coap_io_do_epoll`): four system calls besides
/// the datagram's own receive and send. Under load that was a fifth of the thread's time. Here a readable
/// endpoint is handed to `coap_io_do_epoll` up to ``maxReadsPerWait`` times in one call, so a burst of
/// datagrams costs one wait and one re-arm. The count adapts: it doubles while every read found a request
/// and falls back to what the last call found, so an idle endpoint costs at most one empty read
/// (`EAGAIN`, which libcoap drops) per wait.
///
/// libcoap's timers are unaffected: `coap_io_do_epoll` ends with `coap_io_prepare_epoll` itself, which
/// sends what is due (separate responses, retransmissions) and re-arms the timer descriptor that wakes the
/// wait. The I/O thread asks for one more prepare when it triggered parked requests outside that call.
struct CoAPDatagramReader {
    /// Events taken from one `epoll_wait`.
    static let maxEvents = 16
    /// Reads of one readable endpoint per `coap_io_do_epoll` call, at most.
    static let maxReadsPerWait = 16
    /// The longest wait, in milliseconds: the I/O thread also looks at its stop flag this often.
    static let waitMillis: Int32 = 100

    private let epollFD: Int32
    private var events: [epoll_event]
    private var batch: [epoll_event]
    /// Reads per readable endpoint in the next call.
    private(set) var reads = 1

    init(epollFD: Int32) {
        self.epollFD = epollFD
        events = Array(repeating: epoll_event(), count: Self.maxEvents)
        batch = Array(repeating: epoll_event(), count: Self.maxEvents * Self.maxReadsPerWait)
    }

    /// Waits up to ``waitMillis`` for libcoap's descriptors and the wake pipe, then lets libcoap process what
    /// is ready. `handled` counts the requests that reached the resource handler so far; the difference
    /// across the call sizes the next one.
    mutating func waitAndProcess(_ ctx: OpaquePointer, prepareFirst: Bool, handled: () -> Int) {
        if prepareFirst {
            var now: coap_tick_t = 0
            coap_ticks(&now)
            _ = coap_io_prepare_epoll(ctx, now)
        }
        let n = events.withUnsafeMutableBufferPointer {
            Int(epoll_wait(epollFD, $0.baseAddress, Int32($0.count), Self.waitMillis))
        }
        guard n > 0 else { return }  // a timeout, or EINTR: the caller loops
        var count = 0
        for i in 0..<n {
            // A null pointer is libcoap's timer descriptor or the wake pipe: passed once; libcoap reads its timer.
            let repeats = events[i].data.ptr != nil && events[i].events & EPOLLIN.rawValue != 0 ? reads : 1
            for _ in 0..<repeats {
                batch[count] = events[i]
                count += 1
            }
        }
        let before = handled()
        batch.withUnsafeMutableBufferPointer { coap_io_do_epoll(ctx, $0.baseAddress, count) }
        let found = handled() - before
        reads = found >= reads ? min(reads * 2, Self.maxReadsPerWait) : max(1, found)
    }
}
