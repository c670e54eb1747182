import Foundation
import IoTCore
import IoTProtocols
import Testing

/// The CoAP listener against real peers on loopback: libcoap's `coap-client-notls`/`-openssl` and aiocoap.
@Suite("CoAP ingest", .serialized)
struct CoAPIngestTests {
    @Test("coap-client POST JSON (token in the path) gets 2.04 with the receipt; the point is stored")
    func coapClientPost() async throws {
        let h = try await CoAPHarness()
        let token = try await h.token()
        let out = try await coapClient(
            "-m post -t 50 -e '{\"temp\":21.5}' coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry")
        #expect(out.contains(#""points":1"#), "\(out)")
        #expect(try await h.waitForPoint("t-1", "temp") == .number(21.5))
        let s = h.ingestor.statistics
        #expect(s.stored == 1 && s.received == 1 && s.isBalanced)
        await h.stop()
    }

    @Test("aiocoap PUT with the token in the query, and SenML JSON (Content-Format 110)")
    func aiocoapPutAndSenML() async throws {
        let h = try await CoAPHarness()
        let token = try await h.token("t-2")
        let put = try await aiocoap("put", "coap://127.0.0.1:\(h.port)/telemetry?token=\(token)", #"{"hum":40.5}"#)
        #expect(put.hasPrefix("2.04 "), "\(put)")
        let senml = try await aiocoap(
            "post", "coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry", #"[{"n":"temp","v":19.25}]"#, format: 110)
        #expect(senml.hasPrefix("2.04 "), "\(senml)")
        #expect(try await h.waitForPoint("t-2", "hum") == .number(40.5))
        #expect(try await h.waitForPoint("t-2", "temp") == .number(19.25))
        #expect(try await h.storedCount(reaching: 2) == 2)
        await h.stop()
    }

    /// Issue 20, item 7: `…/api/v1/devices/{uid}/telemetry?token=…`, as on the HTTP listener: the token's device
    /// posts for itself (coap-client and aiocoap); another device's uid with that token is 4.03; no token is 4.01.
    @Test("POST /api/v1/devices/{uid}/telemetry with the token in the query, from libcoap and aiocoap")
    func devicePathWithQueryToken() async throws {
        let h = try await CoAPHarness()
        let token = try await h.token("t-1")
        let base = "coap://127.0.0.1:\(h.port)/api/v1/devices"
        let out = try await coapClient("-m post -t 50 -e '{\"temp\":22.5}' '\(base)/t-1/telemetry?token=\(token)'")
        #expect(out.contains(#""points":1"#), "\(out)")
        let senml = try await aiocoap(
            "post", "\(base)/t-1/telemetry?token=\(token)", #"[{"n":"hum","v":41}]"#, format: 110)
        #expect(senml.hasPrefix("2.04 "), "\(senml)")
        #expect(try await h.waitForPoint("t-1", "temp") == .number(22.5))
        #expect(try await h.waitForPoint("t-1", "hum") == .number(41))
        let other = try await aiocoap("post", "\(base)/t-2/telemetry?token=\(token)", #"{"temp":1}"#)
        #expect(other.hasPrefix("4.03 "), "a device that is not a gateway speaks only for itself: \(other)")
        let anonymous = try await aiocoap("post", "\(base)/t-1/telemetry", #"{"temp":1}"#)
        #expect(anonymous.hasPrefix("4.01 ") && anonymous.contains("token"), "\(anonymous)")
        await h.stop()
    }

    /// Issue 17, item 8: the per-device rate limit is the ingestor's, so it covers CoAP too.
    @Test("over the per-device rate limit a request gets 4.29 and is counted; another device carries on")
    func rateLimit() async throws {
        let h = try await CoAPHarness(ingestorConfiguration: .init(rateLimit: try RateLimit(parsing: "2:60")))
        let token = try await h.token()
        let other = try await h.token("t-2")
        let base = "coap://127.0.0.1:\(h.port)"
        for i in 0..<2 {
            let ok = try await aiocoap("post", "\(base)/api/v1/\(token)/telemetry", #"{"temp":\#(i)}"#)
            #expect(ok.hasPrefix("2.04 "), "\(ok)")
        }
        let limited = try await aiocoap("post", "\(base)/api/v1/\(token)/telemetry", #"{"temp":9}"#)
        #expect(limited.hasPrefix("4.29 ") && limited.contains("rate_limited"), "\(limited)")
        let fine = try await aiocoap("post", "\(base)/api/v1/\(other)/telemetry", #"{"temp":5}"#)
        #expect(fine.hasPrefix("2.04 "), "\(fine)")
        #expect(try await h.storedCount(reaching: 3) == 3)
        let s = h.ingestor.statistics
        #expect(s.rejected == ["rate_limited": 1] && s.isBalanced, "\(s)")
        await h.stop()
    }

    /// Issue 17, item 4: a device that is not a gateway speaks only for itself.
    @Test("a SenML record for another device from a device that is not a gateway gets 4.03")
    func gatewaysAreExplicit() async throws {
        let h = try await CoAPHarness()
        let token = try await h.token()
        let refused = try await aiocoap(
            "post", "coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry", #"[{"bn":"t-2","n":"temp","v":9}]"#,
            format: 110)
        #expect(refused.hasPrefix("4.03 ") && refused.contains("forbidden"), "\(refused)")
        #expect(h.ingestor.statistics.rejected == ["forbidden": 1])
        await h.stop()
    }

    @Test("every error is a 4.xx with a diagnostic payload, counted, and the next good request still works")
    func errors() async throws {
        let h = try await CoAPHarness(maxBodyBytes: 4_096)
        let token = try await h.token()
        let base = "coap://127.0.0.1:\(h.port)"
        // Wrong token (libcoap client) and no token (aiocoap).
        let wrong = try await coapClient("-m post -t 50 -e '{\"temp\":1}' \(base)/api/v1/not-a-token/telemetry")
        #expect(wrong.contains("4.01") && wrong.contains(#""error":"unauthorized""#), "\(wrong)")
        let missing = try await aiocoap("post", "\(base)/telemetry", #"{"temp":1}"#)
        #expect(missing.hasPrefix("4.01 ") && missing.contains("token="), "\(missing)")
        // Malformed JSON, an unknown signal, an unknown resource, an unsupported Content-Format.
        let malformed = try await aiocoap("post", "\(base)/api/v1/\(token)/telemetry", #"{"temp":"#)
        #expect(malformed.hasPrefix("4.00 ") && malformed.contains("malformed_payload"), "\(malformed)")
        let unknown = try await aiocoap("post", "\(base)/api/v1/\(token)/telemetry", #"{"pressure":1}"#)
        #expect(unknown.hasPrefix("4.00 ") && unknown.contains("unknown_signal"), "\(unknown)")
        let nowhere = try await aiocoap("post", "\(base)/somewhere/else", #"{"temp":1}"#)
        #expect(nowhere.hasPrefix("4.04 ") && nowhere.contains("/api/v1/"), "\(nowhere)")
        let text = try await aiocoap("post", "\(base)/api/v1/\(token)/telemetry", "temp=1", format: 0)
        #expect(text.hasPrefix("4.15 ") && text.contains("Content-Format 0"), "\(text)")
        // Oversize: a block-wise body over maxBodyBytes.
        let big = try await aiocoap("post", "\(base)/api/v1/\(token)/telemetry", "big:8000")
        #expect(big.hasPrefix("4.13 ") && big.contains("payload_too_large"), "\(big)")
        // Others carry on.
        let good = try await coapClient("-m post -t 50 -e '{\"temp\":22}' \(base)/api/v1/\(token)/telemetry")
        #expect(good.contains(#""points":1"#), "\(good)")
        // The device is cached now, so this one is parsed on the I/O thread: the same answer, counted the same.
        let malformedCached = try await aiocoap("post", "\(base)/api/v1/\(token)/telemetry", #"{"temp":"#)
        #expect(
            malformedCached.hasPrefix("4.00 ") && malformedCached.contains("malformed_payload"), "\(malformedCached)")
        #expect(try await h.storedCount(reaching: 1) == 1)
        let s = h.ingestor.statistics
        #expect(s.rejected["unauthorized"] == 2, "\(s)")
        #expect(s.rejected["malformed_payload"] == 3, "\(s)")  // bad JSON twice + unsupported Content-Format
        #expect(s.rejected["unknown_signal"] == 1, "\(s)")
        #expect(s.rejected["not_found"] == 1, "\(s)")
        #expect(s.rejected["payload_too_large"] == 1, "\(s)")
        #expect(s.isBalanced, "\(s)")
        await h.stop()
    }

    @Test("block-wise: a 3 KB body arrives in Block1 pieces (aiocoap and coap-client) and is stored whole")
    func blockWise() async throws {
        let h = try await CoAPHarness()
        let token = try await h.token()
        let reply = try await aiocoap("post", "coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry", "big:3000")
        #expect(reply.hasPrefix("2.04 "), "\(reply)")
        let records = Int(reply.split(separator: "\"records\":").last?.prefix { $0.isNumber } ?? "") ?? 0
        #expect(records > 50, "\(reply)")
        // libcoap's client with 64-byte blocks.
        let body =
            "[" + (0..<40).map { #"{"ts":\#(1_800_000_000_000 + $0),"values":{"hum":\#($0)}}"# }.joined(separator: ",")
            + "]"
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("coap-body-\(getpid()).json").path
        try body.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let out = try await coapClient(
            "-m post -t 50 -b 64 -f '\(file)' coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry")
        #expect(out.contains(#""records":40"#), "\(out)")
        #expect(try await h.waitForPoint("t-1", "hum") == .number(39))
        #expect(try await h.storedCount(reaching: 2) == 2)
        await h.stop()
    }

    @Test("DTLS-PSK: the right key is served; a wrong key or identity gets no answer and costs nothing else")
    func dtlsPSK() async throws {
        let h = try await CoAPHarness(dtls: true)
        let token = try await h.token()
        let port = try #require(h.dtlsPort)
        let uri = "coaps://127.0.0.1:\(port)/api/v1/\(token)/telemetry"
        let ok = try await coapClient(
            "-m post -t 50 -e '{\"temp\":30.5}' -u '\(CoAPHarness.pskIdentity)' -k '\(CoAPHarness.pskKey)' \(uri)",
            binary: "coap-client-openssl")
        #expect(ok.contains(#""points":1"#), "\(ok)")
        let wrongKey = try await coapClient(
            "-m post -t 50 -e '{\"temp\":1}' -u '\(CoAPHarness.pskIdentity)' -k 'wrong key' \(uri)",
            binary: "coap-client-openssl")
        #expect(!wrongKey.contains("points"), "\(wrongKey)")
        let wrongIdentity = try await coapClient(
            "-m post -t 50 -e '{\"temp\":1}' -u 'someone-else' -k '\(CoAPHarness.pskKey)' \(uri)",
            binary: "coap-client-openssl")
        #expect(!wrongIdentity.contains("points"), "\(wrongIdentity)")
        // Plain CoAP and DTLS keep serving.
        let again = try await coapClient(
            "-m post -t 50 -e '{\"temp\":31}' -u '\(CoAPHarness.pskIdentity)' -k '\(CoAPHarness.pskKey)' \(uri)",
            binary: "coap-client-openssl")
        #expect(again.contains(#""points":1"#), "\(again)")
        let plain = try await coapClient(
            "-m post -t 50 -e '{\"hum\":50}' coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry")
        #expect(plain.contains(#""points":1"#), "\(plain)")
        #expect(try await h.waitForPoint("t-1", "hum") == .number(50))
        #expect(try await h.waitForPoint("t-1", "temp") == .number(31))
        #expect(try await h.storedCount(reaching: 3) == 3)
        await h.stop()
    }

    @Test("CON and NON requests both get the receipt, the device's first one and the cached ones after it")
    func confirmable() async throws {
        let h = try await CoAPHarness()
        let token = try await h.token()
        // coap-client sends CON by default; -N is NON. Both must get the receipt. The first request of a device
        // is ingested on a task and answered as a separate response; later ones on the I/O thread, in the ACK.
        let con = try await coapClient(
            "-m post -t 50 -e '{\"temp\":5}' coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry")
        #expect(con.contains(#""points":1"#), "\(con)")
        let non = try await coapClient(
            "-N -m post -t 50 -e '{\"temp\":6}' coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry")
        #expect(non.contains(#""points":1"#), "\(non)")
        let conAgain = try await coapClient(
            "-m post -t 50 -e '{\"temp\":7}' coap://127.0.0.1:\(h.port)/api/v1/\(token)/telemetry")
        #expect(conAgain.contains(#""points":1"#), "\(conAgain)")
        #expect(try await h.storedCount(reaching: 3) == 3)
        #expect(try await h.latest("t-1", "temp") == .number(7))
        await h.stop()
    }
}
