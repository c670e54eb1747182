import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTTestSupport
import Synchronization
import Testing

@testable import IoTHTTP

/// Issue 22, item 8: telemetry of a device the gateway has cached is answered on the connection's event loop
/// (``TelemetryFastPath``), the same way the router answers it, in request order, and seen by the idle timeout.
@Suite struct TelemetryFastPathTests {
    @Test func routes() {
        #expect(TelemetryRoute(path: "/api/v1/devices/t-1/telemetry") == .device(uid: "t-1"))
        #expect(TelemetryRoute(path: "/api/v1/abc/telemetry") == .thingsBoard(token: "abc"))
        // What the router decodes or may route elsewhere is left to it.
        for path in [
            "/api/v1/devices/t%2D1/telemetry", "/api/v1/devices/t-1/telemetry?x=1", "/api/v1/devices//telemetry",
            "/api/v1/devices/a/b/telemetry", "/api/v1/devices/t-1/telemetry/", "/api/v1/telemetry",
            "/api/v1//telemetry",
            "/api/v2/devices/t-1/telemetry", "/api/v1/devices/auth",
        ] {
            #expect(TelemetryRoute(path: path) == nil, "\(path)")
        }
    }

    @Test func aCachedDeviceIsAnsweredOnTheEventLoopAsTheRouterAnswers() async throws {
        let h = try await HTTPHarness(authenticationCacheLifetime: .seconds(600))
        let token = try await h.token()
        let own = "/api/v1/devices/t-1/telemetry"
        var answered: Int { h.transport.eventLoopAnswers.load(ordering: .relaxed) }
        try await h.withClient { client in
            // The first request of a token is the router's (the gateway has not cached it).
            let first = try await client.post(own, #"{"ts": 1, "temp": 1}"#, token: token)
            #expect(first.status == .ok && first.text == #"{"sequence":1,"records":1,"points":1}"#)
            #expect(answered == 0)
            let second = try await client.post(own, #"[{"ts": 2, "temp": 2}, {"ts": 3, "temp": 3}]"#, token: token)
            #expect(second.status == .ok && second.text == #"{"sequence":2,"records":2,"points":2}"#)
            #expect(answered == 1)
            #expect(Set(first.headers.map(\.name)) == Set(second.headers.map(\.name)))
            #expect(second.headers[.contentType] == "application/json")
            #expect(second.headers[.contentLength] == "\(second.text.utf8.count)")
            #expect(second.headers[.date].map { $0.hasSuffix(" GMT") && $0.count == 29 } == true)

            // Refusals of a cached device are answered there too, as the router answers them.
            let invalid = try await client.post(own, #"{"temp": "warm"}"#, token: token)
            #expect(invalid.status == .badRequest && invalid.errorCode == "invalid_value")
            #expect(invalid.headers[.contentType] == "application/json")
            let unknown = try await client.post(own, #"{"ts": 4, "humidity": 1}"#, token: token)
            #expect(unknown.status == .badRequest && unknown.errorCode == "unknown_signal")
            let other = try await client.post("/api/v1/devices/t-2/telemetry", #"{"temp": 1}"#, token: token)
            #expect(other.status == .forbidden && other.errorCode == "forbidden")
            #expect(answered == 4)

            // ThingsBoard's path with the same (cached) token: 200 with an empty body.
            let thingsBoard = try await client.post("/api/v1/\(token)/telemetry", #"{"ts": 5, "temp": 5}"#)
            #expect(thingsBoard.status == .ok && thingsBoard.text.isEmpty)
            #expect(thingsBoard.headers[.contentLength] == "0")
            #expect(answered == 5)

            // The router's: a type the transport does not read (the product's parser decides), a path it
            // decodes, a request without a credential.
            let xml = try await client.post(own, "<temp>1</temp>", token: token, contentType: "text/xml")
            #expect(xml.status == .unsupportedMediaType)
            let encoded = try await client.post(
                "/api/v1/devices/t%2D1/telemetry", #"{"ts": 6, "temp": 6}"#, token: token)
            #expect(encoded.status == .ok)
            let anonymous = try await client.post(own, #"{"temp": 1}"#)
            #expect(anonymous.status == .unauthorized)
            #expect(answered == 5)
        }
        try await h.drain()
        #expect(try await h.series("t-1", "temp").map(\.time) == [1, 2, 3, 5, 6])
        let s = h.ingestor.statistics
        #expect(s.received == 9 && s.stored == 4 && s.isBalanced)
        #expect(
            s.rejected == [
                "invalid_value": 1, "unknown_signal": 1, "forbidden": 1, "malformed_payload": 1, "unauthorized": 1,
            ])
        await h.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrderWhileTheRouterHasOne() async throws {
        let h = try await HTTPHarness(authenticationCacheLifetime: .seconds(600))
        let one = try await h.token("t-1")
        let two = try await h.token("t-2")
        let port = h.port
        @Sendable func request(_ uid: String, _ token: String, records: Int, from ts: Int) -> LoopbackHTTPClient.Request
        {
            let body = (0..<records).map { #"{"ts": \#(ts + $0), "temp": \#(ts + $0)}"# }.joined(separator: ",")
            return .init(
                "POST", "/api/v1/devices/\(uid)/telemetry", headers: ["Authorization": "Bearer \(token)"],
                body: Array("[\(body)]".utf8))
        }
        let (warm, mixed, cached, connections) = try await offPool {
            let client = try LoopbackHTTPClient(port: port, timeoutSeconds: 20)
            let warm = try client.request(
                "POST", "/api/v1/devices/t-1/telemetry", headers: ["Authorization": "Bearer \(one)"],
                body: Array(#"{"ts": 0, "temp": 0}"#.utf8))
            // t-2's first request goes to the router; t-1's two after it are cached, but wait their turn.
            let mixed = try client.pipeline([
                request("t-2", two, records: 2, from: 10), request("t-1", one, records: 1, from: 20),
                request("t-1", one, records: 3, from: 30),
            ])
            let cached = try client.pipeline([
                request("t-1", one, records: 1, from: 40), request("t-2", two, records: 2, from: 50),
            ])
            return (warm, mixed, cached, client.connections)
        }
        #expect(warm.status == 200)
        #expect(mixed.map(\.status) == [200, 200, 200] && cached.map(\.status) == [200, 200])
        #expect(
            mixed.map(\.text) == [
                #"{"sequence":2,"records":2,"points":2}"#, #"{"sequence":3,"records":1,"points":1}"#,
                #"{"sequence":4,"records":3,"points":3}"#,
            ])
        #expect(
            cached.map(\.text) == [
                #"{"sequence":5,"records":1,"points":1}"#, #"{"sequence":6,"records":2,"points":2}"#,
            ])
        #expect(connections == 1)
        #expect(h.transport.eventLoopAnswers.load(ordering: .relaxed) == 2)
        try await h.drain()
        #expect(try await h.series("t-1", "temp").map(\.time) == [0, 20, 30, 31, 32, 40])
        #expect(try await h.series("t-2", "temp").map(\.time) == [10, 11, 50, 51])
        await h.stop()
    }

    @Test func idleTimeoutCountsRequestsAnsweredOnTheEventLoop() async throws {
        let h = try await HTTPHarness(
            configuration: .init(port: 0, limits: ListenerLimits(idleTimeout: .milliseconds(1_000))),
            authenticationCacheLifetime: .seconds(600))
        let token = try await h.token()
        let port = h.port
        // One request every 250 ms for 2.5 s on one keep-alive connection: never idle for 1 s.
        let (statuses, connections) = try await offPool {
            let client = try LoopbackHTTPClient(port: port, timeoutSeconds: 20)
            var statuses: [Int] = []
            for i in 0..<10 {
                statuses.append(
                    try client.request(
                        "POST", "/api/v1/devices/t-1/telemetry", headers: ["Authorization": "Bearer \(token)"],
                        body: Array(#"{"ts": \#(i), "temp": \#(i)}"#.utf8)
                    ).status)
                usleep(250_000)
            }
            return (statuses, client.connections)
        }
        #expect(statuses == Array(repeating: 200, count: 10))
        #expect(connections == 1, "the listener closed a connection in use")
        // The first is the router's; a later one is too when a cache entry was being refreshed (a busy machine).
        #expect(h.transport.eventLoopAnswers.load(ordering: .relaxed) >= 5)
        // Left alone, the connection is closed after the idle timeout.
        try await Task.sleep(for: .milliseconds(1_800))
        #expect(h.transport.limiter.open == 0)
        await h.stop()
    }
}
