import Foundation
import IoTCore
import IoTProtocols
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// libcurl transfers block; they must not park the threads Swift's async code runs on. On Linux a
/// `DispatchQueue` drains on those very threads (as many as CPUs), so slow webhooks used to freeze
/// every task of the process until libdispatch's once-a-second monitor added a thread.
@Suite(.serialized) struct TransferThreadTests {
    /// A loopback port that accepts connections (the kernel's backlog) but never answers.
    final class SilentListener {
        let fd: Int32
        let port: Int

        init() throws {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) }
            }
            guard bound == 0, listen(s, 64) == 0 else {
                close(s)
                throw IoTError(.unavailable, "cannot listen on loopback: errno \(errno)")
            }
            _ = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
            }
            fd = s
            port = Int(UInt16(bigEndian: addr.sin_port))
        }

        deinit { close(fd) }
    }

    @Test func slowWebhooksDoNotStallAsyncCode() async throws {
        let listener = try SilentListener()
        let hook = WebhookNotifier(
            channel: "webhook",
            configuration: .init(url: "http://127.0.0.1:\(listener.port)/hook", timeout: .milliseconds(1_500)))
        let concurrent = 4 * max(2, ProcessInfo.processInfo.activeProcessorCount)
        let started = Date()
        async let failures: Int = withTaskGroup(of: Bool.self) { group in
            for i in 0..<concurrent {
                group.addTask {
                    (try? await hook.send(
                        IoTCore.Notification(id: "n\(i)", channel: "webhook", recipient: "", body: "slow"))) == nil
                }
            }
            var n = 0
            for await failed in group where failed { n += 1 }
            return n
        }
        // While every transfer waits for an answer that never comes, short sleeps on the cooperative pool
        // still wake on time.
        var worstLateness = 0.0
        for _ in 0..<40 {
            let t0 = Date()
            try await Task.sleep(for: .milliseconds(20))
            worstLateness = max(worstLateness, Date().timeIntervalSince(t0) - 0.020)
        }
        #expect(await failures == concurrent, "every transfer times out against the silent listener")
        #expect(
            worstLateness < 0.5, "a 20 ms sleep woke \(Int(worstLateness * 1000)) ms late while transfers were blocked")
        #expect(Date().timeIntervalSince(started) < 6, "the transfers ran at once, not one CPU's worth at a time")
        _ = listener
    }
}
