import Synchronization
import Testing

@testable import IoTCore

@Suite struct RateLimitTests {
    @Test func parsesThingsBoardForm() throws {
        let limit = try RateLimit(parsing: "100:1, 2000:60")
        #expect(limit.rules == [.init(count: 100, seconds: 1), .init(count: 2000, seconds: 60)])
        #expect(limit.description == "100:1,2000:60")
    }

    @Test(arguments: ["", "100", "100:", ":1", "100:0", "0:1", "-1:1", "a:b", "100:1,", "100:1:2", "100/1"])
    func rejectsBadSyntaxWithAClearError(spec: String) {
        do {
            _ = try RateLimit(parsing: spec)
            Issue.record("\"\(spec)\" was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("100:1,2000:60"), "the message shows the expected form: \(error.message)")
        }
    }

    @Test func bucketsRefillAndEveryRuleApplies() throws {
        let now = Mutex<Int64>(0)
        let limiter = DeviceRateLimiter(limit: try RateLimit(parsing: "2:1,3:10"), clock: { now.withLock { $0 } })
        let d = DeviceIdentity(tenant: "a", deviceUID: "d")
        #expect(limiter.acquire(d) == nil)
        #expect(limiter.acquire(d) == nil)
        #expect(limiter.acquire(d) == 500, "one token of 2/s is back in 500 ms")
        now.withLock { $0 = 500_000_000 }
        #expect(limiter.acquire(d) == nil)
        now.withLock { $0 = 2_000_000_000 }
        // the 3-per-10-s rule is empty now, although the 2-per-second one is full
        let wait = try #require(limiter.acquire(d))
        #expect(wait > 1_000 && wait <= 10_000)
    }

    @Test func idleDevicesAreForgottenAndMemoryIsBounded() throws {
        let now = Mutex<Int64>(0)
        let limiter = DeviceRateLimiter(
            limit: try RateLimit(parsing: "1:1"), maxDevices: 160, clock: { now.withLock { $0 } })
        for i in 0..<1_000 { _ = limiter.acquire(DeviceIdentity(tenant: "a", deviceUID: "d\(i)")) }
        #expect(limiter.trackedDevices <= 160)
        now.withLock { $0 = 5_000_000_000 }
        for i in 0..<16 { _ = limiter.acquire(DeviceIdentity(tenant: "a", deviceUID: "new\(i)")) }
        #expect(limiter.trackedDevices < 160, "idle entries were swept")
    }
}
