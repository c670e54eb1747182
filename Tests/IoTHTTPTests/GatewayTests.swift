import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 17, item 4: gateways are explicit. A device that is not a gateway speaks only for itself on every
/// transport: a record for another device is refused (HTTP 403, an error reply on WebSocket and TCP), counted,
/// and stores and registers nothing; marked a gateway (here through the management API), it may.
@Suite("Gateways are explicit", .serialized)
struct GatewayTests {
    @Test("a record for another device from a device that is not a gateway is refused on HTTP, WebSocket and TCP")
    func nonGatewaysSpeakOnlyForThemselves() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let token = try await h.token("t-1")
        let auth = ["Authorization": "Bearer \(token)"]
        // SenML naming t-2: 403.
        let senml = try await h.httpRequest(
            "POST", "/api/v1/devices/t-1/telemetry",
            headers: auth.merging(["Content-Type": "application/senml+json"]) { a, _ in a },
            body: #"[{"bn": "t-2", "n": "temp", "v": 99}]"#)
        #expect(senml.status == 403 && senml.text.contains("not a gateway"), "\(senml.text)")
        // The JSON gateway form from a device that is not a gateway is its own payload: refused, not stored for t-2.
        let json = try await h.httpRequest(
            "POST", "/api/v1/devices/t-1/telemetry", headers: auth, body: #"{"t-2": {"temp": 98}}"#)
        #expect(json.status == 400, "\(json.text)")
        let ws = try h.peer(["ws", h.wsURL, "--token", token, "--send", #"{"t-2": {"temp": 97}}"#])
        defer { ws.stop(signal: SIGKILL) }
        #expect(await ws.readLine() == "CONNECTED")
        let ack = try #require(await ws.next("ACK"))
        #expect(ack.contains(#""ok":false"#), "\(ack)")
        let tcp = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(token)", "--send",
            #"{"t-2": {"temp": 96}}"#,
        ])
        defer { tcp.stop(signal: SIGKILL) }
        #expect(await tcp.readLine() == "REPLY OK t-1")
        #expect(await tcp.readLine()?.hasPrefix("REPLY ERR ") == true)
        try await h.drain()
        #expect(try await h.series("t-2").isEmpty, "nothing was stored for the other device")
        #expect(h.rejected("forbidden") == 1)

        // Marked a gateway for t-2 only, t-1 may speak for t-2 (and still not for t-3).
        let put = try await h.apiRequest(
            "PUT", "/api/v1/tenants/acme/devices/t-1",
            body: #"{"product": "thermo", "gateway": true, "gatewayFor": {"devices": ["t-2"]}}"#)
        #expect(put.status == 200 && put.text.contains(#""gateway":true"#), "\(put.text)")
        let ok = try await h.httpRequest(
            "POST", "/api/v1/devices/t-1/telemetry", headers: auth, body: #"{"t-2": {"ts": 1700000000000, "temp": 21}}"#
        )
        #expect(ok.status == 200, "\(ok.text)")
        let outside = try await h.httpRequest(
            "POST", "/api/v1/devices/t-1/telemetry", headers: auth, body: #"{"t-3": {"temp": 21}}"#)
        #expect(outside.status == 403 && outside.text.contains("may not speak for device 't-3'"), "\(outside.text)")
        try await h.drain()
        #expect(try await h.series("t-2").map(\.value) == [.number(21)])
        #expect(h.ingestor.statistics.isBalanced)
    }
}
