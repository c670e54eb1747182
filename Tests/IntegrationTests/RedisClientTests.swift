import IoTCluster
import IoTCore
import IoTTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// IoTCluster's Redis client against a real `redis-server` on a free loopback port: replies of every type, an
/// error reply as an error, a server that goes away as `unavailable` within the timeout, and a new connection
/// once it is back.
@Suite(.serialized) struct RedisClientTests {
    @Test func repliesErrorsAndReconnection() async throws {
        var server = try RedisServer()
        let port = server.port
        defer { server.stop() }
        let redis = try RedisClient(url: "redis://127.0.0.1:\(port)/2", timeout: .milliseconds(500))

        #expect(try await redis.command("PING") == .simple("PONG"))
        #expect(try await redis.command("SET", "k", "välue with spaces\r\n", "PX", "60000") == .simple("OK"))
        #expect(try await redis.command("GET", "k").string == "välue with spaces\r\n")
        #expect(try await redis.command("GET", "missing") == .bulk(nil))
        #expect(try await redis.command("INCRBY", "n", "41").int == 41)
        try await redis.command("HSET", "h", "a", "1", "b", "2")
        #expect(try await redis.command("HGETALL", "h").fields == ["a": "1", "b": "2"])
        #expect(try await redis.command("EVAL", "return {1, 'two', false}", "0").elements.count == 3)
        // SELECT 2 was sent: database 0 does not have the key.
        let other = try RedisClient(url: "redis://127.0.0.1:\(port)")
        #expect(try await other.command("GET", "k") == .bulk(nil))
        await other.close()

        await #expect(throws: IoTError.self) { try await redis.command("NOSUCHCOMMAND") }
        // A refused command leaves the connection usable.
        #expect(try await redis.command("GET", "n").string == "41")

        server.stop(signal: SIGKILL)
        let start = ContinuousClock.now
        do {
            try await redis.command("PING")
            Issue.record("a stopped server answered")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(2), "refused within the timeout")

        server = try RedisServer(port: port)
        #expect(try await redis.command("PING") == .simple("PONG"), "a new connection after the restart")
        await redis.close()
    }

    @Test func urlsAreCheckedWithAClearError() throws {
        #expect(throws: IoTError.self) { try RedisClient.Endpoint(url: "http://127.0.0.1:6379") }
        #expect(throws: IoTError.self) { try RedisClient.Endpoint(url: "redis://127.0.0.1:99999") }
        #expect(throws: IoTError.self) { try RedisClient.Endpoint(url: "redis://127.0.0.1/x") }
        let e = try RedisClient.Endpoint(url: "redis://:secret@redis.local:6380/3")
        #expect(e.host == "redis.local" && e.port == 6380 && e.database == 3 && e.password == "secret")
    }
}
