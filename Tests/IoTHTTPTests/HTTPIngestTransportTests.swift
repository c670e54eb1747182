import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTProtocols
import IoTStorage
import IoTTesting
import NIOCore
import Synchronization
import Testing

@testable import IoTHTTP

@Suite struct HTTPIngestTransportTests {
    @Test func devicePathStoresJSONAndAnswersWithTheReceipt() async throws {
        let h = try await HTTPHarness()
        let token = try await h.token()
        try await h.withClient { client in
            let r = try await client.post(
                "/api/v1/devices/t-1/telemetry", #"{"ts": 1700000000123, "temp": 21.5, "on": true}"#, token: token)
            #expect(r.status == .ok)
            #expect(r.text == #"{"sequence":1,"records":1,"points":2}"#)
            // keep-alive: a second request on the same connection
            let r2 = try await client.post(
                "/api/v1/devices/t-1/telemetry", #"[{"ts": 1, "temp": 1}, {"ts": 2, "temp": 2}]"#, token: token)
            #expect(r2.status == .ok)
            #expect(r2.text == #"{"sequence":2,"records":2,"points":2}"#)
            // content type with parameters, or none at all, is JSON
            let r3 = try await client.post(
                "/api/v1/devices/t-1/telemetry", #"{"ts": 3, "temp": 3}"#, token: token,
                contentType: "application/json; charset=utf-8")
            #expect(r3.status == .ok)
            let r4 = try await client.post(
                "/api/v1/devices/t-1/telemetry", #"{"ts": 4, "temp": 4}"#, token: token, contentType: nil)
            #expect(r4.status == .ok)
        }
        try await h.drain()
        #expect(try await h.series("t-1", "temp").map(\.time) == [1, 2, 3, 4, 1_700_000_000_123])
        #expect(h.ingestor.statistics.stored == 4 && h.ingestor.statistics.isBalanced)
        await h.stop()
    }

    @Test func devicePathReadsSenML() async throws {
        let h = try await HTTPHarness()
        let token = try await h.token()
        try await h.withClient { client in
            let r = try await client.post(
                "/api/v1/devices/t-1/telemetry",
                #"[{"bt": 1700000000, "n": "temp", "v": 20.5}, {"n": "on", "vb": true}]"#,
                token: token, contentType: "application/senml+json")
            #expect(r.status == .ok, "\(r.text)")
        }
        try await h.drain()
        #expect(try await h.series("t-1", "temp").map(\.value) == [.number(20.5)])
        #expect(try await h.series("t-1", "temp").map(\.time) == [1_700_000_000_000])
        #expect(try await h.series("t-1", "on").map(\.value) == [.bool(true)])
        await h.stop()
    }

    @Test(arguments: [
        (#"{"temp": 11}"#, [Int64(1_700_000_000_000)]),
        (#"{"ts": 1700000001000, "values": {"temp": 12}}"#, [1_700_000_001_000]),
        (
            #"[{"ts": 1700000002000, "values": {"temp": 13}}, {"ts": 1700000003000, "values": {"temp": 14}}]"#,
            [1_700_000_002_000, 1_700_000_003_000]
        ),
    ])
    func thingsBoardPathAcceptsEachBodyShape(body: String, times: [Int64]) async throws {
        let h = try await HTTPHarness()
        let token = try await h.token()
        try await h.withClient { client in
            let r = try await client.post("/api/v1/\(token)/telemetry", body)
            #expect(r.status == .ok)
            #expect(r.text.isEmpty, "ThingsBoard answers 200 with an empty body")
        }
        try await h.drain()
        #expect(try await h.series("t-1", "temp").map(\.time) == times)
        await h.stop()
    }

    @Test func thingsBoardPathIgnoresTheContentTypeLikeThingsBoard() async throws {
        let h = try await HTTPHarness()
        let token = try await h.token()
        try await h.withClient { client in
            // curl -d without a header sends application/x-www-form-urlencoded
            let r = try await client.post(
                "/api/v1/\(token)/telemetry", #"{"temp": 1}"#, contentType: "application/x-www-form-urlencoded")
            #expect(r.status == .ok)
        }
        await h.stop()
    }

    @Test func everyErrorHasItsStatusAndJSONReasonAndIsCounted() async throws {
        let h = try await HTTPHarness()
        let token = try await h.token()
        let otherToken = try await h.token("t-2")
        let ghostToken = try await h.auth.issueToken(
            for: DeviceIdentity(tenant: HTTPHarness.tenant, deviceUID: "ghost"), label: "x", now: 0)
        let own = "/api/v1/devices/t-1/telemetry"
        try await h.withClient { client in
            func expect(
                _ r: TestClient.Response, _ status: HTTPResponse.Status, _ code: String,
                sourceLocation: SourceLocation = #_sourceLocation
            ) {
                #expect(r.status == status, "\(r.text)", sourceLocation: sourceLocation)
                #expect(r.errorCode == code, "\(r.text)", sourceLocation: sourceLocation)
                #expect(r.headers[.contentType] == "application/json", sourceLocation: sourceLocation)
                #expect(r.text.contains(#""message":""#), sourceLocation: sourceLocation)
            }
            expect(try await client.post(own, #"{"temp": "#, token: token), .badRequest, "malformed_payload")
            expect(try await client.post(own, #"{"temp": "warm"}"#, token: token), .badRequest, "invalid_value")
            expect(try await client.post(own, #"{"humidity": 1}"#, token: token), .badRequest, "unknown_signal")
            expect(try await client.post(own, #"{"temp": 1}"#), .unauthorized, "unauthorized")
            expect(try await client.post(own, #"{"temp": 1}"#, token: "not-a-token"), .unauthorized, "unauthorized")
            expect(
                try await client.post("/api/v1/not-a-token/telemetry", #"{"temp": 1}"#), .unauthorized, "unauthorized")
            expect(try await client.post(own, #"{"temp": 1}"#, token: otherToken), .forbidden, "forbidden")
            expect(
                try await client.post("/api/v1/devices/ghost/telemetry", #"{"temp": 1}"#, token: ghostToken), .notFound,
                "unknown_device")
            expect(
                try await client.post("/api/v1/\(ghostToken)/telemetry", #"{"temp": 1}"#), .notFound, "unknown_device")
            expect(
                try await client.post(own, "<temp>1</temp>", token: token, contentType: "text/xml"),
                .unsupportedMediaType, "malformed_payload")
            expect(try await client.post("/api/v1/\(token)/telemetry", #"{"temp": "#), .badRequest, "malformed_payload")
            // the connection survives every error
            #expect(try await client.post(own, #"{"temp": 1}"#, token: token).status == .ok)
        }
        try await h.drain()
        let s = h.ingestor.statistics
        #expect(s.received == 12)
        #expect(
            s.rejected == [
                "malformed_payload": 3, "invalid_value": 1, "unknown_signal": 1, "unauthorized": 3, "forbidden": 1,
                "unknown_device": 2,
            ])
        #expect(s.stored == 1 && s.isBalanced)
        await h.stop()
    }

    @Test func oversizeBodiesGet413AndAreCounted() async throws {
        let h = try await HTTPHarness(configuration: .init(port: 0, maxBodyBytes: 1024))
        let token = try await h.token()
        let big = #"{"fw": ""# + String(repeating: "x", count: 4096) + #""}"#
        try await h.withClient { client in
            let r = try await client.post("/api/v1/devices/t-1/telemetry", big, token: token)
            #expect(r.status == .contentTooLarge)
            #expect(r.errorCode == "payload_too_large")
        }
        try await h.withClient { client in
            let r = try await client.post("/api/v1/\(token)/telemetry", big)
            #expect(r.status == .contentTooLarge)
            // just under the limit passes
            let fits = #"{"fw": ""# + String(repeating: "x", count: 1000) + #""}"#
            #expect(try await client.post("/api/v1/\(token)/telemetry", fits).status == .ok)
        }
        try await h.drain()
        let s = h.ingestor.statistics
        #expect(s.rejected == ["payload_too_large": 2] && s.stored == 1 && s.isBalanced)
        await h.stop()
    }

    @Test func aDeclaredOversizeBodyIsRefusedBeforeItArrives() async throws {
        let h = try await HTTPHarness(configuration: .init(port: 0, maxBodyBytes: 1024))
        let token = try await h.token()
        // 10 MB announced, 16 bytes sent: the answer comes without waiting for the rest.
        let (status, text) = try await RawHTTP.exchange(
            port: h.port,
            "POST /api/v1/\(token)/telemetry HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + "Content-Length: 10000000\r\n\r\n{\"temp\": 1, \"x\":")
        #expect(status == 413, "\(text)")
        #expect(text.contains("payload_too_large"))
        #expect(h.ingestor.statistics.rejected == ["payload_too_large": 1])
        await h.stop()
    }

    @Test func aChunkedBodyOverTheLimitGets413() async throws {
        let h = try await HTTPHarness(configuration: .init(port: 0, maxBodyBytes: 1024))
        let token = try await h.token()
        let chunk = String(repeating: " ", count: 800)
        let (status, text) = try await RawHTTP.exchange(
            port: h.port,
            "POST /api/v1/devices/t-1/telemetry HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(token)\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n"
                + "320\r\n\(chunk)\r\n320\r\n\(chunk)\r\n0\r\n\r\n")
        #expect(status == 413, "\(text)")
        // and a chunked body under the limit is read whole
        let (ok, okText) = try await RawHTTP.exchange(
            port: h.port,
            "POST /api/v1/devices/t-1/telemetry HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(token)\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n7\r\n{\"temp\"\r\n4\r\n: 1}\r\n0\r\n\r\n")
        #expect(ok == 200, "\(okText)")
        let s = h.ingestor.statistics
        #expect(s.rejected == ["payload_too_large": 1] && s.isBalanced)
        await h.stop()
    }

    @Test func overTheRateLimitGets429ThenRecovers() async throws {
        let now = Mutex<Int64>(0)
        let h = try await HTTPHarness(
            ingestorConfiguration: .init(rateLimit: try RateLimit(parsing: "2:1,100:60")),
            rateLimitClock: { now.withLock { $0 } })
        let token = try await h.token()
        let otherToken = try await h.token("t-2")
        try await h.withClient { client in
            #expect(try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 1}"#).status == .ok)
            #expect(try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 2}"#).status == .ok)
            let limited = try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 3}"#)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.errorCode == "rate_limited")
            #expect(limited.headers[.retryAfter] == "1", "500 ms rounds up to 1 s")
            // another device has its own allowance
            #expect(try await client.post("/api/v1/\(otherToken)/telemetry", #"{"temp": 1}"#).status == .ok)
            // two tokens per second: one is back after 500 ms
            now.withLock { $0 = 499_000_000 }
            #expect(try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 4}"#).status == .tooManyRequests)
            now.withLock { $0 = 1_000_000_000 }
            #expect(try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 4}"#).status == .ok)
        }
        try await h.drain()
        let s = h.ingestor.statistics
        #expect(s.rejected == ["rate_limited": 2] && s.stored == 4 && s.isBalanced)
        await h.stop()
    }

    @Test func theAuthenticationCacheReusesALookupForItsTTLOnly() async throws {
        let now = Mutex<Int64>(0)
        let h = try await HTTPHarness(
            configuration: .init(port: 0), authenticationCacheLifetime: .milliseconds(1_000),
            authenticationCacheClock: { now.withLock { $0 } })
        let token = try await h.token()
        try await h.withClient { client in
            #expect(try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 1}"#).status == .ok)
            try await h.auth.revokeTokens(of: DeviceIdentity(tenant: HTTPHarness.tenant, deviceUID: "t-1"))
            now.withLock { $0 = 999_000_000 }
            #expect(
                try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 2}"#).status == .ok, "within the TTL")
            now.withLock { $0 = 1_000_000_000 }
            #expect(try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 3}"#).status == .unauthorized)
            // failures are never cached
            #expect(try await client.post("/api/v1/nope/telemetry", #"{"temp": 3}"#).status == .unauthorized)
        }
        await h.stop()
    }

    @Test func theAuthenticationCacheIsBounded() {
        let cache = AuthenticationCache(ttlMillis: 1_000, capacity: 10, clock: { 0 })
        for i in 0..<100 {
            cache.remember(DeviceIdentity(tenant: "a", deviceUID: "d\(i)"), for: "t\(i)", lookedUpAt: 0)
        }
        #expect(cache.count <= 10)
        #expect(cache.identity(for: "t99")?.deviceUID == "d99")
    }

    @Test func aFullStoreGets503WithRetryAfter() async throws {
        let blocked = BlockingPointStore()
        let h = try await HTTPHarness(
            ingestorConfiguration: .init(queueCapacityPoints: 2, retryAfter: .milliseconds(1_500)), points: blocked)
        let token = try await h.token()
        try await h.withClient { client in
            var statuses: [HTTPResponse.Status] = []
            var retryAfter: String?
            for i in 0..<5 {
                let r = try await client.post("/api/v1/devices/t-1/telemetry", #"{"temp": \#(i)}"#, token: token)
                statuses.append(r.status)
                if r.status == .serviceUnavailable {
                    retryAfter = r.headers[.retryAfter]
                    #expect(r.errorCode == "backpressure")
                    break
                }
            }
            #expect(statuses.last == .serviceUnavailable)
            #expect(statuses.dropLast().allSatisfy { $0 == .ok } && statuses.count >= 2)
            #expect(retryAfter == "2", "1 500 ms rounds up to 2 s")
        }
        let s = h.ingestor.statistics
        #expect(s.dropped == ["backpressure": 1] && s.isBalanced)
        blocked.release()
        try await h.drain()
        #expect(h.ingestor.statistics.isBalanced)
        await h.stop()
    }

    /// A journal that cannot take the message (a full disk, issue 22 item 5): 503 with `Retry-After`, so that
    /// the device sends it again; nothing was acknowledged.
    @Test func aFailingJournalGets503() async throws {
        let h = try await HTTPHarness()
        let token = try await h.token()
        h.journal.failAppends(true)
        try await h.withClient { client in
            let r = try await client.post("/api/v1/devices/t-1/telemetry", #"{"temp": 1}"#, token: token)
            #expect(r.status == .serviceUnavailable && r.headers[.retryAfter] == "1")
            #expect(r.errorCode == "journal")
            h.journal.failAppends(false)
            #expect(try await client.post("/api/v1/devices/t-1/telemetry", #"{"temp": 1}"#, token: token).status == .ok)
        }
        #expect(h.ingestor.statistics.dropped == ["journal": 1] && h.ingestor.statistics.isBalanced)
        await h.stop()
    }

    @Test func aStartingIngestorGets503() async throws {
        let h = try await HTTPHarness(startIngestor: false)
        let token = try await h.token()
        try await h.withClient { client in
            let r = try await client.post("/api/v1/\(token)/telemetry", #"{"temp": 1}"#)
            #expect(r.status == .serviceUnavailable)
            #expect(r.headers[.retryAfter] == "1")
        }
        #expect(h.ingestor.statistics.dropped == ["starting": 1] && h.ingestor.statistics.isBalanced)
        await h.stop()
    }

}
