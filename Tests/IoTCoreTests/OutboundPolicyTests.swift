import IoTCore
import Testing

/// Issue 17, item 13: loopback, private and link-local destinations are refused unless the allow-list names
/// them; public ones pass.
@Suite struct OutboundPolicyTests {
    @Test(arguments: [
        "127.0.0.1", "127.1.2.3", "10.0.0.7", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "::1", "[::1]", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "::", "224.0.0.1",
        "localhost",
    ])
    func nonPublicDestinationsAreRefused(host: String) {
        let error = #expect(throws: IoTError.self) { try OutboundPolicy().check(host: host, what: "MQTT broker") }
        #expect(
            error?.code == .forbidden && error?.message.contains("outbound.allow") == true,
            "\(host): \(String(describing: error))")
    }

    @Test(arguments: ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2001:4860:4860::8888"])
    func publicDestinationsPass(host: String) throws {
        try OutboundPolicy().check(host: host, what: "MQTT broker")
    }

    @Test func theAllowListOpensHostsAddressesAndNetworks() throws {
        let policy = OutboundPolicy(allow: ["127.0.0.1", "10.1.0.0/16", "fd00::/8", "broker.lan", "*.plant.lan"])
        for host in ["127.0.0.1", "10.1.2.3", "fd12::5", "broker.lan", "mqtt.plant.lan", "BROKER.LAN"] {
            try policy.check(host: host, what: "MQTT broker", allowUnresolvable: true)
        }
        for host in ["127.0.0.2", "10.2.0.1", "192.168.0.1", "fe80::1"] {
            #expect(throws: IoTError.self, "\(host)") { try policy.check(host: host, what: "MQTT broker") }
        }
        // A name that does not resolve is refused from the API, passed when reading a file.
        #expect(throws: IoTError.self) { try policy.check(host: "no-such-host.invalid", what: "CoAP device") }
        try policy.check(host: "no-such-host.invalid", what: "CoAP device", allowUnresolvable: true)
    }
}
