import Foundation
import IoTCore
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 24, item 4: two `iotd` on one real PostgreSQL and Redis share a Modbus device (pymodbus) and a CoAP
/// observation (aiocoap), each created through a different instance's API. Each is run by one instance (its
/// owner by hash), both instances answer for both (status, owner), a write through the instance that does not
/// poll the device reaches it, and when the owner is killed the survivor polls and observes within seconds.
@Suite(.serialized) struct PlacementTests {
    @Test func modbusDevicesAndCoAPObservationsRunOnOneInstanceAndMoveWhenItDies() async throws {
        try await onOwnThread { try Self.run() }
    }

    static func run() throws {
        let root = String(#filePath.prefix(upTo: #filePath.range(of: "/Tests/")!.lowerBound))
        let pg = try PostgresServer()
        defer { pg.stop() }
        let redis = try RedisServer()
        defer { redis.stop() }
        let modbusPort = ChildProcess.freeLoopbackPort()
        let plc = try ChildProcess([
            "/usr/bin/env", "python3", "-u", root + "/Tests/Support/peers/pymodbus_device.py", "--tcp",
            String(modbusPort), "h:3=42",
        ])
        defer { plc.stop(signal: SIGKILL) }
        try #require(plc.readLine(timeoutSeconds: 30)?.hasPrefix("ready ") == true, "pymodbus did not start")
        let coap = try ChildProcess(
            ["/usr/bin/env", "python3", "-u", root + "/Tests/IoTCoAPTests/Peers/coap_peer.py", "server", "0"])
        defer { coap.stop(signal: SIGKILL) }
        guard let ready = coap.readLine(timeoutSeconds: 30), ready.hasPrefix("ready "),
            let coapPort = Int(ready.dropFirst(6))
        else { throw IntegrationFailure(description: "the aiocoap server did not start") }

        // An observation id owned by the instance that owns the Modbus device, so killing that one moves both.
        let ownership = ClusterOwnership(instance: "i1", live: ["i1", "i2"])
        let owner = ownership.owner(tenant: "lab", key: "modbus/lab/m-1")
        let observation = try #require(
            (0..<50).map { "o-\($0)" }.first { ownership.owner(tenant: "lab", key: "coap/" + $0) == owner })
        let instances = (1...2).map { IotdProcess("iotd-placement-\($0)") }
        for (i, iotd) in instances.enumerated() {
            try iotd.configure(
                iotd.preamble(logLevel: "warning")
                    + """
                    storage: { postgres: { url: "\(pg.url)", schemaPrefix: plc } }
                    cluster: { instanceID: i\(i + 1), redis: { url: "\(redis.url)" } }
                    outbound: { allow: [127.0.0.1] }
                    tenants:
                      - id: lab
                        products: [{ id: meter, signals: [{ name: v }, { name: temp }] }]
                        devices: [{ uid: m-1, product: meter }, { uid: t-1, product: meter }]
                    """)
        }
        for iotd in instances { try iotd.start() }
        defer { for iotd in instances { iotd.stop(signal: SIGKILL) } }
        func json(_ text: String) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
        }
        try eventually("both instances see each other", seconds: 20) {
            let listed = json(try instances[0].api("GET", "/api/v1/cluster").text)["instances"] as? [[String: Any]]
            return listed?.filter { $0["alive"] as? Bool == true }.count == 2
        }
        usleep(1_000_000)

        // Created through different instances.
        let device = try instances[0].api(
            "POST", "/api/v1/tenants/lab/modbus/devices",
            #"{"uid":"m-1","tcp":{"host":"127.0.0.1","port":\#(modbusPort)},"unitId":1,"intervalMillis":200,"registers":[{"signal":"v","address":3}]}"#
        )
        #expect(device.status == 201, "\(device.text)")
        let observed = try instances[1].api(
            "POST", "/api/v1/coap/observations",
            #"{"id":"\#(observation)","uri":"coap://127.0.0.1:\#(coapPort)/temp","tenant":"lab","deviceUID":"t-1"}"#)
        #expect(observed.status == 201, "\(observed.text)")

        // Both instances show both, run by the owner.
        for (i, iotd) in instances.enumerated() {
            try eventually("i\(i + 1) shows the device polled by \(owner)", seconds: 15) {
                let d = json(try iotd.api("GET", "/api/v1/tenants/lab/modbus/devices/m-1").text)
                return d["instance"] as? String == owner && (d["successes"] as? Int ?? 0) > 0
            }
            try eventually("i\(i + 1) shows the observation run by \(owner)", seconds: 15) {
                let o = json(try iotd.api("GET", "/api/v1/coap/observations/\(observation)").text)
                return o["instance"] as? String == owner && (o["stored"] as? Int ?? 0) > 0
            }
        }
        // One poller, one observer: each instance's /metrics counts what it runs itself.
        func gauge(_ iotd: IotdProcess, _ name: String) throws -> Int {
            let metrics = try LoopbackHTTPClient(port: iotd.apiPort).request("GET", "/metrics").text
            return metrics.split(separator: "\n").filter { $0.hasPrefix(name + "{") }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0) { $0 + Int($1) }
        }
        #expect(try instances.map { try gauge($0, "iot_modbus_devices") }.reduce(0, +) == 1)
        #expect(try instances.map { try gauge($0, "iot_coap_observations") }.reduce(0, +) == 1)

        // A write through the instance that does not poll the device.
        let ownerIndex = owner == "i1" ? 0 : 1
        let other = instances[1 - ownerIndex]
        let ownerProcess = instances[ownerIndex]
        let write = try other.api("POST", "/api/v1/tenants/lab/modbus/devices/m-1/write", #"{"signal":"v","value":7}"#)
        #expect(write.status == 200, "\(write.status) \(write.text)")
        try eventually("the written value is polled back", seconds: 10) {
            try other.api("GET", "/api/v1/tenants/lab/devices/m-1/latest").text.contains(#""value":7"#)
        }

        // The owner dies: the survivor polls and observes.
        ownerProcess.stop(signal: SIGKILL)
        let killed = Date()
        let survivor = ownerIndex == 0 ? "i2" : "i1"
        try eventually("the survivor polls the device", seconds: 15) {
            let d = json(try other.api("GET", "/api/v1/tenants/lab/modbus/devices/m-1").text)
            return d["instance"] as? String == survivor && (d["successes"] as? Int ?? 0) > 0
        }
        let polled = Date().timeIntervalSince(killed)
        try eventually("the survivor observes", seconds: 15) {
            let o = json(try other.api("GET", "/api/v1/coap/observations/\(observation)").text)
            return o["instance"] as? String == survivor && (o["stored"] as? Int ?? 0) > 0
        }
        print(
            "after the kill: polled on the survivor within \(String(format: "%.1f", polled)) s, observed within \(String(format: "%.1f", Date().timeIntervalSince(killed))) s"
        )
        #expect(try gauge(other, "iot_modbus_devices") == 1)
    }
}
