import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 24, item 4 (the live feed): two `iotd` on one real PostgreSQL. A dashboard's WebSocket on the first
/// instance receives the points a device posts to the second (relayed with PostgreSQL's NOTIFY once the first
/// says it watches the tenant), and a point posted to the first instance reaches it once.
@Suite(.serialized) struct LiveRelayTests {
    /// Two `iotd` on `pg` (instances `i1` and `i2`), tenant `acme` with device `d-0`, each with `extra(index)`
    /// in its file; started (the caller stops them).
    static func startTwo(_ name: String, on pg: PostgresServer, extra: (Int) -> String) throws -> [IotdProcess] {
        let instances = (1...2).map { IotdProcess("\(name)-\($0)") }
        for (i, iotd) in instances.enumerated() {
            try iotd.configure(
                iotd.preamble(logLevel: "warning") + extra(i)
                    + """
                    storage: { postgres: { url: "\(pg.url)", schemaPrefix: \(name.replacingOccurrences(of: "-", with: "_")) } }
                    cluster: { instanceID: i\(i + 1) }
                    tenants:
                      - id: acme
                        products: [{ id: meter, signals: [{ name: v }] }]
                        devices: [{ uid: d-0, product: meter }]
                    """)
        }
        for iotd in instances { try iotd.start() }
        return instances
    }

    @Test func aDashboardOnOneInstanceSeesWhatAnotherIngests() async throws {
        try await onOwnThread {
            let pg = try PostgresServer()
            defer { pg.stop() }
            let instances = try Self.startTwo("iotd-live", on: pg) { _ in "" }
            defer { for iotd in instances { iotd.stop(signal: SIGKILL) } }
            let token = try instances[0].issueToken(tenant: "acme", device: "d-0")

            let live = try ChildProcess([
                "/usr/bin/env", "python3", "-u", DataScopeCurlTests.peerScript, "ws",
                "ws://127.0.0.1:\(instances[0].apiPort)/api/v1/tenants/acme/live?device=d-0",
                "--token", IotdProcess.adminKey, "--wait", "60",  // open for the whole test
            ])
            defer { live.stop(signal: SIGKILL) }
            #expect(live.readLine(timeoutSeconds: 20) == "CONNECTED")
            #expect(live.readLine(timeoutSeconds: 20) == "READY")
            func post(_ iotd: IotdProcess, _ value: Int) throws {
                let r = try LoopbackHTTPClient(port: iotd.httpPort).request(
                    "POST", "/api/v1/devices/d-0/telemetry",
                    headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                    body: Array(#"{"v": \#(value)}"#.utf8))
                #expect(r.status == 200, "\(r.text)")
            }
            // Points posted to the second instance, one every 300 ms, until one reaches the first's feed (the
            // second learns of the watch within two renewals).
            let started = Date()
            var frames: [String] = []
            var sent = 1_000
            while Date().timeIntervalSince(started) < 15, !frames.contains(where: { $0.contains("\"value\":1") }) {
                try post(instances[1], sent)
                sent += 1
                let deadline = Date().addingTimeInterval(0.3)
                while Date() < deadline, let line = live.readLine(timeoutSeconds: 0.3) {
                    if line.hasPrefix("FRAME") { frames.append(line) }
                }
            }
            let relayed = frames.filter { $0.contains("\"value\":1") }
            print(
                "first relayed frame after \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(relayed.first ?? "none")"
            )
            #expect(!relayed.isEmpty, "a point posted to the second instance reached the first's live feed")
            // Once relaying, every point posted to the second instance arrives, and one posted to the first
            // arrives once.
            frames.removeAll()
            for value in 2_000..<2_005 { try post(instances[1], value) }
            try post(instances[0], 3_000)
            while let line = live.readLine(timeoutSeconds: 5), line != "TIMEOUT" {
                if line.hasPrefix("FRAME") { frames.append(line) }
            }
            let values = frames.joined().components(separatedBy: "\"value\":").dropFirst().compactMap {
                Int($0.prefix { $0.isNumber })
            }
            #expect(Set(values).isSuperset(of: 2_000..<2_005), "every relayed point: \(values)")
            #expect(values.filter { $0 == 3_000 }.count == 1, "the first instance's own point once: \(values)")
        }
    }

    /// Downlink through the first instance's API to a device whose WebSocket is connected to the second.
    @Test func aDownlinkThroughOneInstanceReachesADeviceConnectedToAnother() async throws {
        try await onOwnThread {
            let pg = try PostgresServer()
            defer { pg.stop() }
            let wsPorts = [ChildProcess.freeLoopbackPort(), ChildProcess.freeLoopbackPort()]
            let instances = try Self.startTwo("iotd-downlink", on: pg) { "websocket: { port: \(wsPorts[$0]) }\n" }
            defer { for iotd in instances { iotd.stop(signal: SIGKILL) } }
            let token = try instances[0].issueToken(tenant: "acme", device: "d-0")
            let downlink = "/api/v1/tenants/acme/devices/d-0/downlink"
            #expect(try instances[0].api("POST", downlink, #"{"x": 1}"#).status == 409, "not connected anywhere")

            let device = try ChildProcess([
                "/usr/bin/env", "python3", "-u", DataScopeCurlTests.peerScript, "ws",
                "ws://127.0.0.1:\(wsPorts[1])/api/v1/devices/ws", "--token", token, "--wait", "10", "--frames", "1",
            ])
            defer { device.stop(signal: SIGKILL) }
            #expect(device.readLine(timeoutSeconds: 20) == "CONNECTED")
            #expect(device.readLine(timeoutSeconds: 20) == "READY")
            usleep(300_000)  // the session is registered after the upgrade
            let started = Date()
            let sent = try instances[0].api("POST", downlink, #"{"setpoint": 19.5}"#)
            print("downlink through the other instance answered in \(Int(Date().timeIntervalSince(started) * 1000)) ms")
            #expect(sent.status == 200 && sent.text.contains(#""delivered":1"#), "\(sent.status) \(sent.text)")
            var frame: String?
            while let line = device.readLine(timeoutSeconds: 10) {
                if line.hasPrefix("FRAME") {
                    frame = line
                    break
                }
            }
            #expect(frame?.contains(#"{"type":"downlink","data":{"setpoint": 19.5}}"#) == true, "\(frame ?? "none")")
        }
    }
}
