import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

struct PKIFailure: Error, CustomStringConvertible {
    var description: String
}

/// A test PKI that openssl makes (Peers/make-pki.sh) in a temporary directory: a device CA, a server
/// certificate, device certificates (valid, expired, from another CA, unknown), and each device
/// certificate's fingerprint and subject as openssl prints them.
final class TestPKI: Sendable {
    let directory: String
    /// openssl's `-fingerprint -sha256` (`AB:CD:…`) per certificate name.
    let fingerprints: [String: String]
    /// openssl's `-subject -nameopt RFC2253` per certificate name.
    let subjects: [String: String]

    init() throws {
        directory = NSTemporaryDirectory() + "iot-pki-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = DeviceHarness.peerScript.replacingOccurrences(of: "/peer.py", with: "/make-pki.sh")
        let child = try ChildProcess(["/bin/sh", script, directory])
        var fingerprints: [String: String] = [:]
        var subjects: [String: String] = [:]
        var done = false
        while let line = child.readLine() {
            if line == "DONE" { done = true }
            let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
            guard parts.count == 4, parts[0] == "CERT" else { continue }
            fingerprints[parts[1]] = parts[2]
            subjects[parts[1]] = parts[3]
        }
        let status = child.wait()
        guard status == 0, done, fingerprints.count == 5 else {
            throw PKIFailure(description: "make-pki.sh failed (status \(status)); is openssl installed?")
        }
        self.fingerprints = fingerprints
        self.subjects = subjects
    }

    func path(_ file: String) -> String { directory + "/" + file }

    /// The listener TLS configuration with the test server certificate and device CA.
    func listener(_ mode: ListenerTLS.ClientCertificates) -> ListenerTLS {
        ListenerTLS(
            certificatePath: path("server.pem"), privateKeyPath: path("server.key"), clientCAPath: path("ca.pem"),
            clientCertificates: mode)
    }

    /// Peer arguments presenting certificate `name` (or none) and trusting the test CA.
    func client(_ name: String?) -> [String] {
        ["--ca", path("ca.pem")] + (name.map { ["--cert", path("\($0).pem"), "--key", path("\($0).key")] } ?? [])
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

/// TLS on the device listeners against Python `ssl` peers, with certificates openssl made for the test.
@Suite("TLS device listeners (openssl-made PKI, Python ssl peers)", .serialized)
struct TLSTests {
    /// Every listener with TLS and client certificates in `mode`; t-1 registered by fingerprint through the
    /// management API (in openssl's colon form), t-2 by subject through the library API.
    static func harness(_ pki: TestPKI, mode: ListenerTLS.ClientCertificates = .required) async throws -> DeviceHarness
    {
        let tls = pki.listener(mode)
        let h = try await DeviceHarness(
            webSocket: .init(port: 0, maxMessageBytes: 1_024, tls: tls),
            tcp: .init(port: 0, maxFrameBytes: 1_024, tls: tls),
            http: .init(port: 0, tls: tls))
        let added = try await h.apiRequest(
            "POST", "/api/v1/tenants/acme/devices/t-1/credentials/certificates",
            body: #"{"match": "fingerprint", "value": "sha256 Fingerprint=\#(pki.fingerprints["device1"]!)"}"#)
        #expect(added.status == 201, "\(added.text)")
        _ = try await h.auth.addCertificate(
            for: h.identity("t-2"), match: .subject, value: pki.subjects["device2"]!, label: "by-subject", now: 0)
        return h
    }

    /// Whether a peer's output shows a connection refused at TLS: the handshake or the first read after
    /// it failed (with TLS 1.3 the client learns of a refused certificate on its first read), or the
    /// connection was reset; never a reply.
    static func refusedAtTLS(_ lines: [String]) -> Bool {
        guard let first = lines.first else { return false }
        return (first.hasPrefix("TLSERROR") || first.hasPrefix("CLOSED"))
            && !lines.contains { $0.hasPrefix("REPLY OK") || $0 == "CONNECTED" || $0.hasPrefix("STATUS") }
    }

    /// Waits up to 5 s for the rejected count of `reason` to reach `count` (the server counts a refused
    /// handshake when it sees it, which can be just after the client does).
    static func rejected(_ h: DeviceHarness, _ reason: String, reaches count: Int) async throws -> Bool {
        for _ in 0..<500 {
            if h.rejected(reason) >= count { return h.rejected(reason) == count }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test(
        "TCP: registered client certificates (fingerprint, subject) are their devices; expired, wrong-CA, unknown and missing certificates and a plain-TCP client are refused and counted while a device carries on"
    )
    func tcp() async throws {
        let pki = try TestPKI()
        let h = try await Self.harness(pki)
        defer { Task { await h.stop() } }
        let port = h.tcpLinesPort
        func peer(_ cert: String?, _ extra: [String] = []) throws -> Peer {
            try h.peer(
                ["tcp", "127.0.0.1", "\(port)", "--handshake", "cert", "--send", #"{"temp": 7}"#] + pki.client(cert)
                    + extra)
        }
        // t-1 stays connected through everything below.
        let one = try peer("device1", ["--wait", "20"])
        defer { one.stop(signal: SIGKILL) }
        #expect(await one.readLine() == "REPLY OK t-1")
        #expect(await one.readLine()?.hasPrefix("REPLY OK ") == true)
        #expect(await one.readLine() == "READY")
        let two = try peer("device2")
        defer { two.stop(signal: SIGKILL) }
        #expect(await two.readLine() == "REPLY OK t-2", "matched by the subject openssl printed")
        #expect(await two.readLine()?.hasPrefix("REPLY OK ") == true)

        for (cert, what) in [
            ("expired", "an expired certificate"), ("rogue", "a certificate from another CA with t-2's subject"),
        ] {
            let bad = try peer(cert)
            defer { bad.stop(signal: SIGKILL) }
            let lines = await bad.rest()
            #expect(Self.refusedAtTLS(lines), "\(what): \(lines)")
        }
        let none = try peer(nil)
        defer { none.stop(signal: SIGKILL) }
        let noneLines = await none.rest()
        #expect(Self.refusedAtTLS(noneLines), "no certificate where one is required: \(noneLines)")
        let unknown = try peer("unknown")
        defer { unknown.stop(signal: SIGKILL) }
        #expect(
            await unknown.readLine()?.hasPrefix("REPLY ERR unauthorized ") == true,
            "a CA-issued certificate no device has")
        #expect(await unknown.next("CLOSED") != nil)
        #expect(try await Self.rejected(h, "unauthorized", reaches: 4))

        let plain = try h.peer([
            "tcp", "127.0.0.1", "\(port)", "--handshake", "token:whatever", "--send", #"{"temp": 9}"#,
        ])
        defer { plain.stop(signal: SIGKILL) }
        let plainLines = await plain.rest()
        #expect(!plainLines.contains { $0.hasPrefix("REPLY OK") }, "\(plainLines)")
        #expect(
            plainLines.contains { $0.hasPrefix("CLOSED") || $0.hasPrefix("REPLY") }, "it ends cleanly: \(plainLines)")
        #expect(try await Self.rejected(h, "malformed_payload", reaches: 1), "the plain-TCP client is counted")

        // The first device's connection carried on through all of it.
        #expect(await h.sessions.send(Array(#"{"led": "on"}"#.utf8), to: h.identity("t-1")) == 1)
        #expect(await one.readLine() == #"REPLY DOWN {"led": "on"}"#)
        try await h.drain()
        #expect(try await h.series("t-1").map(\.value) == [.number(7)])
        #expect(try await h.series("t-2").map(\.value) == [.number(7)])
        #expect(h.ingestor.statistics.isBalanced)
    }

    @Test(
        "HTTPS: a registered certificate posts without a token; expired, wrong-CA and missing certificates fail the handshake; an unknown one gets 401; another device's path 403"
    )
    func https() async throws {
        let pki = try TestPKI()
        let h = try await Self.harness(pki)
        defer { Task { await h.stop() } }
        func post(_ cert: String?, _ uid: String) async throws -> [String] {
            let peer = try h.peer(
                ["https", "127.0.0.1", "\(h.httpPort)", "/api/v1/devices/\(uid)/telemetry", "--body", #"{"temp": 3}"#]
                    + pki.client(cert))
            defer { peer.stop(signal: SIGKILL) }
            return await peer.rest()
        }
        #expect(try await post("device1", "t-1").first == "STATUS 200")
        #expect(try await post("device2", "t-2").first == "STATUS 200")
        #expect(try await post("device1", "t-2").first == "STATUS 403")
        #expect(try await post("unknown", "t-9").first == "STATUS 401")
        for cert in ["expired", "rogue", nil] {
            let lines = try await post(cert, "t-1")
            #expect(Self.refusedAtTLS(lines), "\(cert ?? "no certificate"): \(lines)")
        }
        #expect(try await Self.rejected(h, "unauthorized", reaches: 4))
        #expect(h.rejected("forbidden") == 1)
        try await h.drain()
        #expect(try await h.series("t-1").map(\.value) == [.number(3)])
        #expect(try await h.series("t-2").map(\.value) == [.number(3)])
        #expect(h.ingestor.statistics.isBalanced)
    }

    @Test(
        "WebSocket over TLS: a registered certificate connects without a token; expired and wrong-CA certificates fail the handshake; an unknown one is refused with HTTP 401"
    )
    func webSocket() async throws {
        let pki = try TestPKI()
        let h = try await Self.harness(pki)
        defer { Task { await h.stop() } }
        let url = "wss://127.0.0.1:\(h.wsPort)/api/v1/devices/ws"
        func connect(_ cert: String?) throws -> Peer {
            try h.peer(["ws", url, "--send", #"{"temp": 4}"#] + pki.client(cert))
        }
        let one = try connect("device1")
        defer { one.stop(signal: SIGKILL) }
        #expect(await one.readLine() == "CONNECTED")
        #expect(await one.readLine()?.contains(#""ok":true"#) == true)
        for cert in ["expired", "rogue"] {
            let bad = try connect(cert)
            defer { bad.stop(signal: SIGKILL) }
            let lines = await bad.rest()
            #expect(
                Self.refusedAtTLS(lines) || (lines.first?.hasPrefix("ERROR") == true && !lines.contains("CONNECTED")),
                "\(cert): \(lines)")
        }
        let unknown = try connect("unknown")
        defer { unknown.stop(signal: SIGKILL) }
        #expect(await unknown.readLine() == "STATUS 401")
        #expect(try await Self.rejected(h, "unauthorized", reaches: 3))
        try await h.drain()
        #expect(try await h.series("t-1").map(\.value) == [.number(4)])
        #expect(h.ingestor.statistics.isBalanced)
    }

    @Test(
        "optional client certificates: a token works without a certificate, a registered certificate works without a token, a wrong-CA certificate is still refused"
    )
    func optional() async throws {
        let pki = try TestPKI()
        let h = try await Self.harness(pki, mode: .optional)
        defer { Task { await h.stop() } }
        let token = try await h.token("t-3")
        let withToken = try h.peer(
            [
                "tcp", "127.0.0.1", "\(h.tcpLengthPort)", "--framing", "length", "--handshake", "token:\(token)",
                "--send", #"{"temp": 1}"#,
            ]
                + pki.client(nil))
        defer { withToken.stop(signal: SIGKILL) }
        #expect(await withToken.readLine() == "REPLY OK t-3")
        #expect(await withToken.readLine()?.hasPrefix("REPLY OK ") == true)
        let withCert = try h.peer(
            [
                "tcp", "127.0.0.1", "\(h.tcpLengthPort)", "--framing", "length", "--handshake", "cert", "--send",
                #"{"temp": 2}"#,
            ]
                + pki.client("device1"))
        defer { withCert.stop(signal: SIGKILL) }
        #expect(await withCert.readLine() == "REPLY OK t-1")
        let noCert = try h.peer(
            ["tcp", "127.0.0.1", "\(h.tcpLengthPort)", "--handshake", "cert"] + pki.client(nil))
        defer { noCert.stop(signal: SIGKILL) }
        #expect(await noCert.readLine()?.hasPrefix("REPLY ERR unauthorized ") == true, "'cert' without a certificate")
        let rogue = try h.peer(["tcp", "127.0.0.1", "\(h.tcpLengthPort)", "--handshake", "cert"] + pki.client("rogue"))
        defer { rogue.stop(signal: SIGKILL) }
        let rogueLines = await rogue.rest()
        #expect(Self.refusedAtTLS(rogueLines), "\(rogueLines)")
        #expect(try await Self.rejected(h, "unauthorized", reaches: 2))
    }

    @Test(
        "credentials: certificates are listed, a taken fingerprint is a conflict, revoking closes the device's connection"
    )
    func credentials() async throws {
        let pki = try TestPKI()
        let h = try await Self.harness(pki)
        defer { Task { await h.stop() } }
        let listed = try await h.apiRequest("GET", "/api/v1/tenants/acme/devices/t-1/credentials")
        let fingerprint = pki.fingerprints["device1"]!.replacingOccurrences(of: ":", with: "").lowercased()
        #expect(listed.text.contains(#""value":"\#(fingerprint)""#), "\(listed.text)")
        let taken = try await h.apiRequest(
            "POST", "/api/v1/tenants/acme/devices/t-3/credentials/certificates",
            body: #"{"value": "\#(pki.fingerprints["device1"]!)", "label": "copy"}"#)
        #expect(taken.status == 409, "\(taken.text)")
        let malformed = try await h.apiRequest(
            "POST", "/api/v1/tenants/acme/devices/t-3/credentials/certificates", body: #"{"value": "12:34"}"#)
        #expect(malformed.status == 400, "\(malformed.text)")
        let one = try h.peer(
            ["tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "cert", "--wait", "10"] + pki.client("device1"))
        defer { one.stop(signal: SIGKILL) }
        #expect(await one.readLine() == "REPLY OK t-1")
        #expect(await one.readLine() == "READY")
        let revoked = try await h.apiRequest(
            "DELETE", "/api/v1/tenants/acme/devices/t-1/credentials/certificates/primary")
        #expect(revoked.status == 200, "\(revoked.text)")
        #expect(await one.next("CLOSED") != nil, "revocation closes the connection")
        let again = try h.peer(
            ["tcp", "127.0.0.1", "\(h.tcpLinesPort)", "--handshake", "cert"] + pki.client("device1"))
        defer { again.stop(signal: SIGKILL) }
        #expect(await again.readLine()?.hasPrefix("REPLY ERR unauthorized ") == true)
    }

    @Test(
        "TLS 1.2 is the minimum: openssl limited to TLS 1.1 fails the handshake; the same client at TLS 1.2 completes it"
    )
    func tls12IsTheMinimum() async throws {
        let pki = try TestPKI()
        let h = try await Self.harness(pki, mode: .optional)
        defer { Task { await h.stop() } }
        /// What `openssl s_client` reports as negotiated ("New, TLSv1.2, Cipher is …" or "New, (NONE), …").
        func negotiated(_ version: String) throws -> String {
            // SECLEVEL=0 lets OpenSSL 3 offer TLS 1.1 at all, so only the server can refuse it.
            let child = try ChildProcess([
                "/bin/sh", "-c",
                "openssl s_client -connect 127.0.0.1:\(h.tcpLinesPort) \(version) -cipher 'DEFAULT:@SECLEVEL=0' -CAfile '\(pki.path("ca.pem"))' </dev/null 2>&1",
            ])
            var line = "no 'New,' line"
            while let l = child.readLine() {
                if l.hasPrefix("New, ") { line = l }
            }
            _ = child.wait()
            return line
        }
        let old = try negotiated("-tls1_1")
        #expect(old.hasPrefix("New, (NONE)"), "TLS 1.1 was accepted: \(old)")
        let current = try negotiated("-tls1_2")
        #expect(current.hasPrefix("New, TLSv1.2"), "TLS 1.2 failed: \(current)")
    }

    @Test("configuration: missing files and a client-certificate mode without a CA are refused with what to fix")
    func configuration() throws {
        let pki = try TestPKI()
        #expect(throws: Never.self) { try pki.listener(.required).validate() }
        var noCA = pki.listener(.required)
        noCA.clientCAPath = nil
        #expect(throws: IoTError.self) { try noCA.validate() }
        var missing = pki.listener(.none)
        missing.certificatePath = pki.path("nope.pem")
        #expect(throws: IoTError.self) { try missing.validate() }
        var wrongKey = pki.listener(.none)
        wrongKey.privateKeyPath = pki.path("device1.key")
        #expect(throws: IoTError.self) { try wrongKey.validate() }
    }

    /// Issue 17, item 12: `management.tls`, the device listeners' TLS block on the management listener.
    @Test("the management listener speaks TLS with the same block; client certificates can be required")
    func managementTLS() async throws {
        let pki = try TestPKI()
        for mode in [ListenerTLS.ClientCertificates.none, .required] {
            let h = try await DeviceHarness(managementTLS: pki.listener(mode))
            defer { Task { await h.stop() } }
            let ok = try h.peer(
                [
                    "https", "127.0.0.1", "\(h.apiPort)", "/api/v1/tenants", "--body",
                    #"{"id": "tls-\#(mode.rawValue)"}"#,
                    "--token", DeviceHarness.adminKey,
                ] + pki.client(mode == .required ? "device1" : nil))
            defer { ok.stop(signal: SIGKILL) }
            #expect(await ok.readLine() == "STATUS 201", "\(mode)")
            // Plain HTTP to the TLS port gets no answer.
            await #expect(throws: (any Error).self) { _ = try await h.apiRequest("GET", "/api/v1/tenants") }
            if mode == .required {
                let anonymous = try h.peer(
                    ["https", "127.0.0.1", "\(h.apiPort)", "/api/v1/tenants", "--token", DeviceHarness.adminKey]
                        + pki.client(nil))
                defer { anonymous.stop(signal: SIGKILL) }
                #expect(
                    await anonymous.readLine()?.hasPrefix("TLSERROR") == true, "no client certificate, no connection")
            }
        }
    }
}
