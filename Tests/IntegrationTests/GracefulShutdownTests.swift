import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct GracefulShutdownTests {
    /// Issue 21, item 1: every built-in service iotd runs ends on SIGTERM within a second, and iotd exits 0:
    /// the device HTTP, WebSocket and TCP listeners, CoAP with an observation of a silent device, Modbus polling
    /// a device that refuses connections, an MQTT client whose broker is down (reconnecting), the notification
    /// dispatcher, rules, statistics, retention and the management API.
    @Test func sigtermStopsEveryServiceWithinASecond() throws {
        let iotd = IotdProcess("iotd-sigterm")
        let closed = ChildProcess.freeLoopbackPort()  // nothing listens there
        try iotd.configure(
            iotd.preamble() + """
                storage: { retentionDays: 30 }
                websocket: { port: \(ChildProcess.freeLoopbackPort()) }
                tcp: [{ port: \(ChildProcess.freeLoopbackPort()) }]
                coap:
                  port: \(ChildProcess.freeLoopbackUDPPort())
                  observations: [{ id: silent, uri: "coap://127.0.0.1:\(ChildProcess.freeLoopbackUDPPort())/t", tenant: lab, deviceUID: d }]
                outbound: { allow: ["127.0.0.1"] }
                modbus:
                  devices:
                    - { tenant: lab, uid: m, tcp: { host: 127.0.0.1, port: \(closed) }, intervalMillis: 200, registers: [{ signal: s, address: 0 }] }
                mqtt:
                  clients:
                    - id: down
                      tenant: lab
                      broker: { host: 127.0.0.1, port: \(closed), clientID: iotd-down, reconnectDelayMillis: 100 }
                      subscriptions: [{ template: "devices/{uid}/telemetry", qos: 1 }]
                notifications:
                  channels: [{ name: hook, type: webhook, url: "http://127.0.0.1:\(closed)/hook" }]
                tenants: [{ id: lab, devices: [{ uid: d, product: p }, { uid: m, product: p }], products: [{ id: p, signals: [{ name: s }] }] }]
                """)
        try iotd.start()
        usleep(500_000)  // the pollers, the observer and the MQTT client are at work
        // They run: the API lists each of them.
        #expect(try iotd.api("GET", "/api/v1/mqtt/clients").text.contains("\"down\""))
        #expect(try iotd.api("GET", "/api/v1/coap/observations").text.contains("\"silent\""))
        let modbus = try iotd.api("GET", "/api/v1/tenants/lab/modbus/devices").text
        #expect(modbus.contains("\"failures\"") && !modbus.contains("\"failures\":0"), "polled and failing: \(modbus)")
        let start = Date()
        let status = iotd.stop(signal: SIGTERM, timeoutSeconds: 10)
        let took = Date().timeIntervalSince(start)
        #expect(status & 0x7f == 0, "killed by signal \(status & 0x7f)")
        #expect((status >> 8) & 0xff == 0, "exit code \((status >> 8) & 0xff)")
        #expect(took < 1.0, "iotd took \(took) s to stop after SIGTERM")
    }

    /// Issue 22, item 8: a clean shutdown checkpoints every SQLite database and removes its WAL (a kill -9 leaves
    /// it, and the next start replays it); what was stored is there after the restart.
    @Test func aCleanShutdownLeavesNoWALBehind() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-wal")
            try iotd.configure(
                iotd.preamble()
                    + "tenants: [{ id: lab, devices: [{ uid: d, product: p }], products: [{ id: p, signals: [{ name: s }] }] }]\n"
            )
            try iotd.start()
            let token = try iotd.issueToken(tenant: "lab", device: "d")
            let device = try LoopbackHTTPClient(port: iotd.httpPort)
            for i in 0..<200 {
                let r = try device.request(
                    "POST", "/api/v1/devices/d/telemetry",
                    headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                    body: Array(#"{"ts": \#(1_700_000_000_000 + i), "s": \#(i)}"#.utf8))
                #expect(r.status == 200)
            }
            func walFiles() -> [String] {
                let all = (FileManager.default.enumerator(atPath: iotd.dataDirectory)?.allObjects as? [String]) ?? []
                return all.filter { $0.hasSuffix(".sqlite-wal") || $0.hasSuffix(".sqlite-shm") }
            }
            #expect(!walFiles().isEmpty, "while running, the databases are in WAL mode")
            #expect(iotd.stop(signal: SIGTERM, timeoutSeconds: 10) == 0)
            #expect(walFiles().isEmpty, "left behind: \(walFiles())")
            try iotd.start()
            defer { iotd.stop() }
            let series = try iotd.api("GET", "/api/v1/tenants/lab/devices/d/series/s?limit=1000").text
            #expect(series.components(separatedBy: #""time":"#).count - 1 == 200, "\(series.prefix(300))")
        }
    }
}
