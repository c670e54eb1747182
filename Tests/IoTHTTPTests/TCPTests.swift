import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The raw TCP listener against plain-socket Python peers, started and stopped by PID.
@Suite("TCP transport (plain socket peers)", .serialized)
struct TCPTests {
    @Test(
        "both framings: handshake, an ack per message, malformed and oversize frames answered, counted and skipped",
        arguments: ["lines", "length"])
    func framing(_ framing: String) async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let password = try await h.password("t-1")
        let port = framing == "lines" ? h.tcpLinesPort : h.tcpLengthPort
        let peer = try h.peer([
            "tcp", "127.0.0.1", "\(port)", "--framing", framing, "--handshake", "uid:t-1:t-1-user:\(password.password)",
            "--send", #"{"temp": 1}"#, "--send", "{oops", "--send", "@size:3000", "--send", #"{"temp": 2, "hum": 40}"#,
        ])
        defer { peer.stop(signal: SIGKILL) }
        #expect(await peer.readLine() == "REPLY OK t-1")
        let first = try #require(await peer.readLine())
        #expect(first.hasPrefix("REPLY OK "), "\(first)")
        #expect(await peer.readLine()?.hasPrefix("REPLY ERR malformed_payload ") == true)
        let oversize = try #require(await peer.readLine())
        #expect(oversize.hasPrefix("REPLY ERR payload_too_large "), "\(oversize)")
        if framing == "lines" {
            #expect(
                await peer.readLine()?.hasPrefix("REPLY OK ") == true, "the stream carries on after the oversize line")
        } else {
            // A length header over the limit closes the connection: skipping the bytes it announces could
            // swallow the frames after it (issue 17).
            #expect(oversize.contains("the connection is closed"), "\(oversize)")
            #expect(await peer.next("CLOSED") != nil)
        }
        try await h.drain()
        #expect(
            try await h.series("t-1").map(\.value) == (framing == "lines" ? [.number(1), .number(2)] : [.number(1)]))
        #expect(try await h.series("t-1", "hum").map(\.value) == (framing == "lines" ? [.number(40)] : []))
        #expect(h.rejected("malformed_payload") == 1 && h.rejected("payload_too_large") == 1)
        #expect(h.ingestor.statistics.isBalanced)
    }

    /// Issue 17, item 8: the per-device rate limit is the ingestor's, so it covers WebSocket and TCP too.
    @Test(
        "over the per-device rate limit WebSocket and TCP messages get an error reply and are counted; the connection carries on"
    )
    func rateLimit() async throws {
        let h = try await DeviceHarness(ingestorConfiguration: .init(rateLimit: try RateLimit(parsing: "2:60")))
        defer { Task { await h.stop() } }
        let token = try await h.token("t-1")
        let tcp = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(token)",
            "--send", #"{"ts": 1700000000001, "temp": 1}"#, "--send", #"{"ts": 1700000000002, "temp": 2}"#,
            "--send", #"{"ts": 1700000000003, "temp": 3}"#,
        ])
        defer { tcp.stop(signal: SIGKILL) }
        #expect(await tcp.readLine() == "REPLY OK t-1")
        #expect(await tcp.readLine()?.hasPrefix("REPLY OK ") == true)
        #expect(await tcp.readLine()?.hasPrefix("REPLY OK ") == true)
        let limited = try #require(await tcp.readLine())
        #expect(limited.hasPrefix("REPLY ERR rate_limited ") && limited.contains("retry after"), "\(limited)")
        let other = try await h.token("t-2")
        let ws = try h.peer([
            "ws", h.wsURL, "--token", other, "--send", #"{"temp": 4}"#, "--send", #"{"temp": 5}"#, "--send",
            #"{"temp": 6}"#,
        ])
        defer { ws.stop(signal: SIGKILL) }
        #expect(await ws.readLine() == "CONNECTED")
        #expect(await ws.next("ACK")?.contains(#""ok":true"#) == true)
        #expect(await ws.next("ACK")?.contains(#""ok":true"#) == true)
        let wsLimited = try #require(await ws.next("ACK"))
        #expect(wsLimited.contains(#""ok":false"#) && wsLimited.contains("rate_limited"), "\(wsLimited)")
        try await h.drain()
        #expect(h.rejected("rate_limited") == 2 && h.ingestor.statistics.isBalanced)
        #expect(try await h.series("t-1").map(\.value) == [.number(1), .number(2)])
    }

    /// Issue 17: a length header announcing 10 MB answered "skipped" and then swallowed the next valid frame; an
    /// empty line was ignored silently.
    @Test("a 10 MB length header is answered and closes the connection; an empty line is answered and counted")
    func desyncAndEmptyLines() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let token = try await h.token("t-1")
        let length = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLengthPort)", "--framing", "length", "--handshake", "token:\(token)",
            "--send", "@header:10000000", "--send", #"{"temp": 7}"#,
        ])
        defer { length.stop(signal: SIGKILL) }
        #expect(await length.readLine() == "REPLY OK t-1")
        let refused = try #require(await length.readLine())
        #expect(refused.hasPrefix("REPLY ERR payload_too_large ") && refused.contains("closed"), "\(refused)")
        #expect(await length.next("CLOSED") != nil)

        let lines = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(token)", "--send", "", "--send", "\r",
            "--send", #"{"temp": 8}"#,
        ])
        defer { lines.stop(signal: SIGKILL) }
        #expect(await lines.readLine() == "REPLY OK t-1")
        #expect(await lines.readLine()?.hasPrefix("REPLY ERR malformed_payload ") == true)
        #expect(await lines.readLine()?.hasPrefix("REPLY ERR malformed_payload ") == true)
        #expect(await lines.readLine()?.hasPrefix("REPLY OK ") == true)
        try await h.drain()
        #expect(try await h.series("t-1").map(\.value) == [.number(8)])
        #expect(h.rejected("payload_too_large") == 1 && h.rejected("malformed_payload") == 2)
        #expect(h.ingestor.statistics.isBalanced)
    }

    @Test(
        "handshake: wrong password, unknown form and another device's uid are refused, counted and closed; a token works"
    )
    func handshake() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let password = try await h.password("t-1")
        let token = try await h.token("t-2")
        let cases: [(String, String)] = [
            ("uid:t-1:t-1-user:wrong-password", "REPLY ERR unauthorized "),
            ("hello", "REPLY ERR malformed_payload "),
            ("uid:t-2:t-1-user:\(password.password)", "REPLY ERR forbidden "),
            ("token:nope", "REPLY ERR unauthorized "),
        ]
        for (line, expected) in cases {
            let peer = try h.peer([
                "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", line, "--send", #"{"temp": 5}"#,
            ])
            defer { peer.stop(signal: SIGKILL) }
            let reply = try #require(await peer.readLine())
            #expect(reply.hasPrefix(expected), "\(line) → \(reply)")
            #expect(await peer.next("CLOSED") != nil, "closed after a failed handshake")
        }
        #expect(h.rejected("unauthorized") == 2 && h.rejected("malformed_payload") == 1 && h.rejected("forbidden") == 1)
        let ok = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(token)", "--send", #"{"temp": 5}"#,
        ])
        defer { ok.stop(signal: SIGKILL) }
        #expect(await ok.readLine() == "REPLY OK t-2")
        #expect(await ok.readLine()?.hasPrefix("REPLY OK ") == true)
        try await h.drain()
        #expect(try await h.series("t-2").map(\.value) == [.number(5)])
        #expect(try await h.series("t-1").isEmpty)
    }

    @Test("a slow client (one byte at a time) is served while a fast one carries on")
    func slowClient() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let t1 = try await h.token("t-1")
        let t2 = try await h.token("t-2")
        let slow = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(t1)", "--slow", "1.5",
            "--send", #"{"temp": 1, "hum": 2}"#,
        ])
        defer { slow.stop(signal: SIGKILL) }
        #expect(await slow.readLine() == "REPLY OK t-1")
        let start = ContinuousClock.now
        let fast = try h.peer(
            ["tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(t2)"]
                + (1...20).flatMap { ["--send", #"{"ts": \#(1_700_000_000_000 + $0), "temp": \#($0)}"#] })
        defer { fast.stop(signal: SIGKILL) }
        #expect(await fast.readLine() == "REPLY OK t-2")
        var fastReplies: [String] = []
        for _ in 0..<20 { if let line = await fast.readLine() { fastReplies.append(line) } }
        #expect(fastReplies.count == 20 && fastReplies.allSatisfy { $0.hasPrefix("REPLY OK ") })
        #expect(ContinuousClock.now - start < .seconds(1.4), "the fast client did not wait for the slow one")
        #expect(await slow.readLine()?.hasPrefix("REPLY OK ") == true)
        try await h.drain()
        #expect(try await h.series("t-1", "hum").map(\.value) == [.number(2)])
        #expect(try await h.series("t-2").count == 20)
    }

    @Test("an idle connection is closed after the idle timeout")
    func idleTimeout() async throws {
        let h = try await DeviceHarness(tcp: .init(port: 0, maxFrameBytes: 1_024, idleTimeout: .milliseconds(700)))
        defer { Task { await h.stop() } }
        let token = try await h.token("t-1")
        let peer = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(token)", "--wait", "10",
        ])
        defer { peer.stop(signal: SIGKILL) }
        #expect(await peer.readLine() == "REPLY OK t-1")
        let closed = try #require(await peer.next("CLOSED"))
        let seconds = Double(closed.split(separator: " ")[2]) ?? 99
        #expect(seconds < 2, "closed after 0.7 s idle: \(closed)")
        let silent = try h.peer(["tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--wait", "10"])
        defer { silent.stop(signal: SIGKILL) }
        #expect(await silent.next("CLOSED") != nil, "a connection that never sends its handshake is closed too")
    }

    @Test("revocation closes a live TCP session within one second; downlink reaches a connected device")
    func revocationAndDownlink() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let password = try await h.password("t-1")
        let t2 = try await h.token("t-2")
        let victim = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLengthPort)", "--framing", "length", "--handshake",
            "uid:t-1:t-1-user:\(password.password)", "--wait", "10",
        ])
        defer { victim.stop(signal: SIGKILL) }
        let bystander = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(t2)", "--wait", "3",
        ])
        defer { bystander.stop(signal: SIGKILL) }
        #expect(await victim.next("READY") != nil)
        #expect(await bystander.next("READY") != nil)
        let sent = try await h.apiRequest(
            "POST", "/api/v1/tenants/acme/devices/t-1/downlink", body: "{\"valve\":\n\"open\"}")
        #expect(sent.status == 200)
        #expect(await victim.readLine() == #"REPLY DOWN {"valve": "open"}"#)
        let start = ContinuousClock.now
        let revoked = try await h.apiRequest("DELETE", "/api/v1/tenants/acme/devices/t-1/credentials/passwords/primary")
        #expect(revoked.status == 200)
        #expect(await victim.next("CLOSED") != nil)
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(1), "closed within one second of the revocation: \(elapsed)")
        #expect(await bystander.next("TIMEOUT") != nil, "the other device stays connected")
    }

    @Test(
        "read backpressure: a device that sends without reading its acks is held back by TCP flow control, not buffered; another device carries on"
    )
    func readBackpressure() async throws {
        let h = try await DeviceHarness()
        defer { Task { await h.stop() } }
        let t1 = try await h.token("t-1")
        let t2 = try await h.token("t-2")
        let flood = try h.peer([
            "tcp-flood", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(t1)", "--hold", "30",
        ])
        defer { flood.stop(signal: SIGKILL) }
        #expect(await flood.readLine() == "REPLY OK t-1")
        let sentLine = try #require(await flood.next("SENT "))
        let sent = try #require(Int(sentLine.dropFirst(5)))
        // Unbounded reading would take all 64 MiB at once; paused reading stops at what the kernel buffers hold.
        #expect(sent < 32 << 20, "the device got \(sent) bytes out before it was held back")
        // The server works through what the kernel buffered until its acks fill the device's receive window,
        // then reads nothing more: the count of messages received settles.
        var settled = false
        var last = h.ingestor.statistics.received
        for _ in 0..<40 where !settled {
            try await Task.sleep(for: .milliseconds(500))
            let now = h.ingestor.statistics.received
            settled = now == last
            last = now
        }
        #expect(settled, "reading stops while the device does not read its acks (\(last) messages received)")
        #expect(
            last * 2 < sent, "the server read \(last * 2) of the \(sent) bytes sent: the rest waits in kernel buffers")
        #expect(h.sessions.sessions(of: h.identity("t-1")).count == 1, "the connection is paused, not dropped")
        let other = try h.peer([
            "tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "token:\(t2)", "--send", #"{"temp": 5}"#,
        ])
        defer { other.stop(signal: SIGKILL) }
        #expect(await other.readLine() == "REPLY OK t-2")
        #expect(await other.readLine()?.hasPrefix("REPLY OK ") == true)
        try await h.drain()
        #expect(try await h.series("t-2").map(\.value) == [.number(5)])
    }
}
