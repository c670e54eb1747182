import Glibc
import IoTTestSupport
import IoTTesting
import Testing

/// The test HTTP client gives up on a server that never answers instead of hanging the test.
@Suite struct LoopbackHTTPClientTests {
    @Test func aServerThatNeverAnswersFailsTheRequestAfterTheTimeout() throws {
        // A listener that accepts (the kernel completes the handshake) and never reads or writes.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        try #require(bound && listen(listener, 4) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))

        let client = try LoopbackHTTPClient(port: port, timeoutSeconds: 1)
        let started = ContinuousClock.now
        #expect {
            _ = try client.request("GET", "/healthz")
        } throws: { error in
            "\(error)".contains("no response from 127.0.0.1:\(port) within 1 s")
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(900) && waited < .seconds(10), "\(waited)")
    }
}
