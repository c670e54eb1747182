import Foundation
import IoTCore
import IoTProtocols
import Testing

/// Refused DTLS handshakes on the CoAP DTLS listener are counted as the TLS listeners count theirs:
/// rejected, reason `unauthorized`, transport `coap`.
@Suite("CoAP DTLS handshakes", .serialized)
struct CoAPHandshakeTests {
    private func waitForUnauthorized(_ h: CoAPHarness, _ n: Int, seconds: Int) async throws -> Int {
        var count = 0
        for _ in 0..<(seconds * 20) {
            count = h.ingestor.statistics.rejected["unauthorized"] ?? 0
            if count >= n { return count }
            try await Task.sleep(for: .milliseconds(50))
        }
        return count
    }

    @Test("an unknown PSK identity and a wrong key are refused and counted; a good client still gets 2.04")
    func refusedHandshakesAreCounted() async throws {
        let h = try await CoAPHarness(dtls: true)
        let token = try await h.token()
        let port = try #require(h.dtlsPort)
        let uri = "coaps://127.0.0.1:\(port)/api/v1/\(token)/telemetry"
        func post(_ value: Int, identity: String = CoAPHarness.pskIdentity, key: String = CoAPHarness.pskKey)
            async throws -> String
        {
            try await coapClient(
                "-m post -t 50 -e '{\"temp\":\(value)}' -u '\(identity)' -k '\(key)' \(uri)",
                binary: "coap-client-openssl")
        }

        let good = try await post(1)
        #expect(good.contains(#""points":1"#), "\(good)")
        #expect(h.ingestor.statistics.rejected["unauthorized"] == nil)  // a completed handshake is not counted

        // An unknown identity: OpenSSL fails the handshake at once.
        let unknown = try await post(2, identity: "someone-else")
        #expect(!unknown.contains("points"), "\(unknown)")
        #expect(try await waitForUnauthorized(h, 1, seconds: 5) == 1)

        // A wrong key: DTLS drops the client's Finished, and the handshake fails when OpenSSL's retransmissions
        // run out: 26, 58 or 118 s after the client gave up in our runs (5 to 7 periods of a timer that
        // doubles from 1 s up to 60 s), so the wait allows 240 s. Meanwhile a good client is served.
        let wrongKey = Task { try await post(3, key: "not the key") }
        let during = try await post(4)
        #expect(during.contains(#""points":1"#), "\(during)")
        #expect(!(try await wrongKey.value).contains("points"))
        #expect(try await waitForUnauthorized(h, 2, seconds: 240) == 2)

        let after = try await post(5)
        #expect(after.contains(#""points":1"#), "\(after)")
        let s = h.ingestor.statistics
        #expect(s.rejected["unauthorized"] == 2 && s.stored == 3 && s.isBalanced, "\(s)")
        #expect(try await h.waitForPoint("t-1", "temp") != nil)
        await h.stop()
    }
}
