import HTTPTypes
import IoTCore
import IoTListener
import Testing

/// Issue 24, item 6: the client behind a trusted proxy.
@Suite struct TrustedProxiesTests {
    @Test func addressesAndBlocksMatch() throws {
        let proxies = try TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8", "192.168.1.0/25"])
        #expect(proxies.contains("127.0.0.1") && !proxies.contains("127.0.0.2"))
        #expect(proxies.contains("10.200.3.4") && !proxies.contains("11.0.0.1"))
        #expect(proxies.contains("fd12::1") && !proxies.contains("fe80::1"))
        #expect(proxies.contains("192.168.1.127") && !proxies.contains("192.168.1.128"))
        #expect(proxies.contains("::ffff:10.1.1.1"), "an IPv4-mapped address is its IPv4 address")
        #expect(!proxies.contains("not an address"))
        #expect(!TrustedProxies().contains("127.0.0.1"))
        #expect(throws: IoTError.self) { try TrustedProxies(["10.0.0.0/33"]) }
        #expect(throws: IoTError.self) { try TrustedProxies(["nginx.local"]) }
    }

    @Test func theClientIsTheRightMostUntrustedHop() throws {
        let proxies = try TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
        // From a trusted proxy: the right-most address that is not a proxy; what the client wrote on the left is
        // not believed.
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 203.0.113.9"]) == "203.0.113.9")
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: ["203.0.113.9, 10.1.1.1"]) == "203.0.113.9")
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: ["203.0.113.9", "10.1.1.1"]) == "203.0.113.9")
        // From anyone else the header is ignored.
        #expect(proxies.client(peer: "198.51.100.7", forwardedFor: ["203.0.113.9"]) == "198.51.100.7")
        // A hop that is not an address leaves the peer.
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: ["unknown"]) == "127.0.0.1")
        #expect(proxies.client(peer: "127.0.0.1", forwardedFor: []) == "127.0.0.1")
        // From a request's fields (the router's middleware and the event loop's telemetry path read them so).
        var fields: HTTPFields = [:]
        #expect(proxies.client(peer: "127.0.0.1", fields: fields) == "127.0.0.1")
        fields[HTTPField.Name("X-Forwarded-For")!] = "6.6.6.6, 203.0.113.9"
        #expect(proxies.client(peer: "127.0.0.1", fields: fields) == "203.0.113.9")
        #expect(proxies.client(peer: "198.51.100.7", fields: fields) == "198.51.100.7")
        #expect(TrustedProxies().client(peer: "127.0.0.1", fields: fields) == "127.0.0.1")
    }

    @Test func aTrustedProxyIsExemptFromThePerAddressCap() throws {
        let limiter = ConnectionLimiter(
            limits: ListenerLimits(
                maxConnections: 5, maxConnectionsPerAddress: 2, trustedProxies: try TrustedProxies(["127.0.0.1"])),
            listener: "test")
        #expect(limiter.acquire("10.0.0.1") && limiter.acquire("10.0.0.1") && !limiter.acquire("10.0.0.1"))
        #expect(limiter.acquire("127.0.0.1") && limiter.acquire("127.0.0.1") && limiter.acquire("127.0.0.1"))
        #expect(!limiter.acquire("127.0.0.1"), "the overall cap still holds")
    }
}
