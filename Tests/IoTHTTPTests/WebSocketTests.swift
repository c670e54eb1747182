import IoTCore
import IoTProtocols
import IoTServer
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The WebSocket listener against the Python `websockets` client, started and stopped by PID.
@Suite("WebSocket transport (Python websockets peer)", .serialized)
struct WebSocketTests {
    @Test(
        "authentication at the upgrade: none or wrong credentials are refused with HTTP 401 before the upgrade and counted; token, Basic and ?token= connect"
    )
    func authentication() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let token = try await h.token("t-1")
        let password = try await h.password("t-2")

        // Refusals are counted at the upgrade and answered as HTTP, with the reason, before any WebSocket
        // exists (issue 17: they were a 101 and then a close 4401).
        let none = try h.peer(["ws", h.wsURL, "--wait", "5"])
        defer { none.stop(signal: SIGKILL) }
        #expect(await none.readLine() == "STATUS 401")
        let noneBody = await none.next("BODY")
        #expect(noneBody?.contains("no device credential") == true, "\(noneBody ?? "")")

        let wrong = try h.peer(["ws", h.wsURL, "--token", "not-a-token", "--wait", "5"])
        defer { wrong.stop(signal: SIGKILL) }
        #expect(await wrong.readLine() == "STATUS 401")
        let wrongBody = await wrong.next("BODY")
        #expect(wrongBody?.contains("the access token is not valid") == true, "\(wrongBody ?? "")")

        let badPassword = try h.peer(["ws", h.wsURL, "--basic", "t-2-user:wrong-password", "--send", #"{"temp": 1}"#])
        defer { badPassword.stop(signal: SIGKILL) }
        #expect(await badPassword.readLine() == "STATUS 401", "a message after a refusal is not taken")
        #expect(h.rejected("unauthorized") == 3)

        let good = try h.peer(["ws", h.wsURL, "--token", token, "--send", #"{"ts": 1700000000001, "temp": 21.5}"#])
        defer { good.stop(signal: SIGKILL) }
        #expect(await good.readLine() == "CONNECTED")
        let ack = try #require(await good.next("ACK"))
        #expect(ack.contains(#""n":1,"ok":true"#))

        let basic = try h.peer(["ws", h.wsURL, "--basic", "t-2-user:\(password.password)", "--send", #"{"temp": 7}"#])
        defer { basic.stop(signal: SIGKILL) }
        #expect(await basic.readLine() == "CONNECTED")
        #expect(await basic.next("ACK")?.contains(#""ok":true"#) == true)

        let query = try h.peer(["ws", h.wsURL + "?token=\(token)", "--send", #"{"ts": 1700000000002, "temp": 8}"#])
        defer { query.stop(signal: SIGKILL) }
        #expect(await query.readLine() == "CONNECTED")
        #expect(await query.next("ACK")?.contains(#""ok":true"#) == true)
        try await h.drain()
        #expect(try await h.series("t-1").map(\.value) == [.number(21.5), .number(8)])
        #expect(try await h.series("t-2").map(\.value) == [.number(7)])
    }

    @Test(
        "an ack per message after the receipt; malformed and oversize messages get an error ack and are counted; others carry on"
    )
    func acksAndBadInput() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let t1 = try await h.token("t-1")
        let t2 = try await h.token("t-2")
        let bad = try h.peer([
            "ws", h.wsURL, "--token", t1, "--send", #"{"temp": 1}"#, "--send", "{not json", "--send", "@size:2000",
            "--send", #"{"nosuch": 1}"#, "--send", #"{"temp": 2}"#,
        ])
        defer { bad.stop(signal: SIGKILL) }
        // Device times: two messages acked within one millisecond would otherwise share a server time, and
        // the second would replace the first (last write wins).
        let other = try h.peer([
            "ws", h.wsURL, "--token", t2, "--send", #"{"ts": 1700000000000, "values": {"temp": 10}}"#,
            "--send", #"{"ts": 1700000000001, "values": {"temp": 11}}"#,
        ])
        defer { other.stop(signal: SIGKILL) }
        #expect(await bad.readLine() == "CONNECTED")
        var acks: [String] = []
        for _ in 0..<5 { if let ack = await bad.next("ACK") { acks.append(ack) } }
        #expect(acks.count == 5)
        #expect(acks[0].contains(#""n":1,"ok":true,"sequence":"#))
        #expect(acks[1].contains(#""n":2,"ok":false,"error":"malformed_payload""#))
        #expect(acks[2].contains(#""n":3,"ok":false,"error":"payload_too_large""#))
        #expect(acks[3].contains(#""n":4,"ok":false,"error":"unknown_signal""#))
        #expect(acks[4].contains(#""n":5,"ok":true"#), "the connection carries on after bad input")
        #expect(await other.readLine() == "CONNECTED")
        #expect(await other.next("ACK")?.contains(#""ok":true"#) == true)
        #expect(await other.next("ACK")?.contains(#""ok":true"#) == true)
        try await h.drain()
        #expect(try await h.series("t-1").map(\.value) == [.number(1), .number(2)])
        #expect(try await h.series("t-2").map(\.value) == [.number(10), .number(11)])
        #expect(h.rejected("malformed_payload") == 1)
        #expect(h.rejected("payload_too_large") == 1)
        #expect(h.rejected("unknown_signal") == 1)
        #expect(h.ingestor.statistics.isBalanced)
    }

    @Test("the server pings; a client that answers stays connected; one that does not is closed")
    func heartbeat() async throws {
        let h = try await DeviceHarness(
            webSocket: .init(port: 0, pingInterval: .milliseconds(300), idleTimeout: .milliseconds(30_000)))
        defer { Task { await h.stop() } }
        let token = try await h.token("t-1")
        let answering = try h.peer(["ws", h.wsURL, "--token", token, "--wait", "1.6"])
        defer { answering.stop(signal: SIGKILL) }
        let silent = try h.peer(["ws-nopong", "127.0.0.1", "\(h.wsPort)", "/api/v1/devices/ws", "--token", token])
        defer { silent.stop(signal: SIGKILL) }
        #expect(await answering.readLine() == "CONNECTED")
        let pings = try #require(await answering.next("PINGS"))
        #expect((Int(pings.split(separator: " ")[1]) ?? 0) >= 3, "pings every 300 ms: \(pings)")
        #expect(await answering.readLine() == "TIMEOUT", "still open: it answered every ping")
        #expect(await silent.readLine() == "CONNECTED")
        let silentPings = try #require(await silent.next("PINGS"))
        #expect((Int(silentPings.split(separator: " ")[1]) ?? 0) >= 1)
        let closed = try #require(await silent.next("CLOSED"))
        let seconds = Double(closed.split(separator: " ")[2]) ?? 99
        #expect(seconds < 3, "closed after an unanswered ping: \(closed)")
    }

    @Test("an idle connection is closed with 1001 and its session removed")
    func idleClose() async throws {
        let h = try await DeviceHarness(
            webSocket: .init(port: 0, pingInterval: .milliseconds(10_000), idleTimeout: .milliseconds(800)))
        defer { Task { await h.stop() } }
        let token = try await h.token("t-1")
        let peer = try h.peer(["ws", h.wsURL, "--token", token, "--send", #"{"temp": 1}"#, "--wait", "10"])
        defer { peer.stop(signal: SIGKILL) }
        #expect(await peer.readLine() == "CONNECTED")
        let closed = try #require(await peer.next("CLOSED"))
        let parts = closed.split(separator: " ", maxSplits: 3)
        #expect(parts[1] == "1001")
        #expect((Double(parts[2]) ?? 99) < 2.5, "closed after 0.8 s idle: \(closed)")
        for _ in 0..<100 where h.sessions.count > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(h.sessions.count == 0)
    }

    @Test("downlink from the management API reaches the connected device")
    func downlink() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let token = try await h.token("t-1")
        let peer = try h.peer(["ws", h.wsURL, "--token", token, "--wait", "10", "--frames", "1"])
        defer { peer.stop(signal: SIGKILL) }
        #expect(await peer.readLine() == "CONNECTED")
        #expect(await peer.readLine() == "READY")
        let offline = try await h.apiRequest("POST", "/api/v1/tenants/acme/devices/t-2/downlink", body: #"{"x":1}"#)
        #expect(offline.status == 409, "t-2 is not connected")
        let sent = try await h.apiRequest(
            "POST", "/api/v1/tenants/acme/devices/t-1/downlink", body: #"{"setpoint": 19.5}"#)
        #expect(sent.status == 200 && sent.text.contains(#""delivered":1"#))
        let frame = try #require(await peer.next("FRAME"))
        #expect(frame.contains(#"{"type":"downlink","data":{"setpoint": 19.5}}"#))
        #expect(try await h.apiRequest("POST", "/api/v1/tenants/acme/devices/t-1/downlink", body: "{bad").status == 400)
    }

    @Test("the live feed on the management listener streams new points, filtered by device")
    func liveFeed() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let url = "ws://127.0.0.1:\(h.apiPort)/api/v1/tenants/acme/live?device=t-1"
        let refused = try h.peer(["ws", url, "--api-key", "wrong", "--wait", "5"])
        defer { refused.stop(signal: SIGKILL) }
        #expect(await refused.next("CLOSED")?.hasPrefix("CLOSED 4401 ") == true)
        let viewer = try h.peer(["ws", url, "--api-key", DeviceHarness.adminKey, "--wait", "10", "--frames", "1"])
        defer { viewer.stop(signal: SIGKILL) }
        #expect(await viewer.readLine() == "CONNECTED")
        for _ in 0..<500 where h.live.subscriberCount == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let t1 = try await h.token("t-1")
        let t2 = try await h.token("t-2")
        #expect(
            try await h.httpRequest(
                "POST", "/api/v1/devices/t-2/telemetry", headers: ["Authorization": "Bearer \(t2)"],
                body: #"{"temp": 99}"#
            ).status == 200)
        try await h.drain()
        #expect(
            try await h.httpRequest(
                "POST", "/api/v1/devices/t-1/telemetry", headers: ["Authorization": "Bearer \(t1)"],
                body: #"{"temp": 42}"#
            ).status == 200)
        let frame = try #require(await viewer.next("FRAME"))
        #expect(frame.contains(#""device":"t-1","signal":"temp""#) && frame.contains(#""value":42"#))
        #expect(!frame.contains("t-2"), "filtered by device: \(frame)")
    }

    @Test("revoking the device's credentials closes its live WebSocket within one second; other devices stay")
    func revocationCutsSession() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let t1 = try await h.token("t-1")
        let t2 = try await h.token("t-2")
        let victim = try h.peer(["ws", h.wsURL, "--token", t1, "--send", #"{"temp": 1}"#, "--wait", "10"])
        defer { victim.stop(signal: SIGKILL) }
        let bystander = try h.peer(["ws", h.wsURL, "--token", t2, "--wait", "3"])
        defer { bystander.stop(signal: SIGKILL) }
        #expect(await victim.next("READY") != nil)
        #expect(await bystander.next("READY") != nil)
        let start = ContinuousClock.now
        let revoked = try await h.apiRequest("DELETE", "/api/v1/tenants/acme/devices/t-1/credentials")
        #expect(revoked.status == 200)
        let closed = try #require(await victim.next("CLOSED"))
        let elapsed = ContinuousClock.now - start
        #expect(closed.split(separator: " ", maxSplits: 3)[1] == "1008")
        #expect(elapsed < .seconds(1), "closed within one second of the revocation: \(elapsed)")
        #expect(await bystander.next("TIMEOUT") != nil, "the other device's connection stayed open")
        let again = try h.peer(["ws", h.wsURL, "--token", t1, "--wait", "5"])
        defer { again.stop(signal: SIGKILL) }
        #expect(await again.readLine() == "STATUS 401", "the revoked token no longer connects")
    }

    @Test(
        "every oversize input is counted: a message in many frames over the limit is skipped and the connection carries on; a frame over four times the limit closes with 1009"
    )
    func oversizeAlwaysCounted() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let t1 = try await h.token("t-1")
        let peer = try h.peer([
            "ws", h.wsURL, "--token", t1, "--send", "@frag:8:1000", "--send", #"{"temp": 1}"#, "--send", "@size:5000",
        ])
        defer { peer.stop(signal: SIGKILL) }
        #expect(await peer.readLine() == "CONNECTED")
        let first = try #require(await peer.readLine())
        #expect(first.contains(#""n":1,"ok":false,"error":"payload_too_large""#), "8 000 bytes in 8 frames: \(first)")
        #expect(await peer.readLine()?.contains(#""n":2,"ok":true"#) == true, "the connection carries on")
        let closed = try #require(await peer.next("CLOSED"))
        #expect(closed.hasPrefix("CLOSED 1009 "), "one 5 000-byte frame: \(closed)")
        for _ in 0..<200 where h.rejected("payload_too_large") < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(h.rejected("payload_too_large") == 2)
        try await h.drain()
        #expect(try await h.series("t-1").map(\.value) == [.number(1)])
        #expect(h.ingestor.statistics.isBalanced)
    }
}
