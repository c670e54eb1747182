import IoTCore
import IoTTesting
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A line-oriented device on one end of a socketpair; acknowledges "OK <seq>" or "ERR <reason>".
final class SocketLineDevice: StreamTransport, @unchecked Sendable {
    let descriptor: Int32
    init(descriptor: Int32, ingestor: Ingestor, maxFrameBytes: Int = 64) {
        self.descriptor = descriptor
        super.init(
            name: "line", identity: DeviceIdentity(tenant: IngestHarness.tenant, deviceUID: "t-1"),
            parser: JSONParser(),
            configuration: .init(maxFrameBytes: maxFrameBytes), ingestor: ingestor, logger: Logger(label: "line"))
    }
    override func connect() async throws -> any ByteStream { FileDescriptorStream(descriptor: descriptor) }
    override func acknowledgement(for result: Result<Receipt, IoTError>) -> [UInt8]? {
        switch result {
        case .success(let r): Array("OK \(r.sequence)\n".utf8)
        case .failure(let e): Array("ERR \(e.code.name)\n".utf8)
        }
    }
}

/// Reads the system's load average from /proc: a real "device" polled on a schedule.
final class LoadAveragePoller: PollingTransport, @unchecked Sendable {
    let failFirst: Int
    private let calls = Mutex(0)
    init(ingestor: Ingestor, clock: any IoTClock, failFirst: Int = 0) {
        self.failFirst = failFirst
        super.init(
            name: "loadavg", identity: DeviceIdentity(tenant: IngestHarness.tenant, deviceUID: "t-1"),
            configuration: .init(
                interval: .seconds(1), timeout: .milliseconds(500), backoffInitial: .seconds(2), startDelay: .zero),
            ingestor: ingestor, clock: clock, logger: Logger(label: "poll"))
    }
    override func poll() async throws -> [DeviceRecord] {
        let n = calls.withLock { c in
            c += 1
            return c
        }
        if n <= failFirst { throw IoTError(.unavailable, "device not answering (simulated failure \(n))") }
        let fd = open("/proc/loadavg", O_RDONLY)
        guard fd >= 0 else { throw IoTError(.unavailable, "cannot open /proc/loadavg") }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 128)
        let k = read(fd, &buf, 128)
        let text = String(decoding: buf[0..<max(0, k)], as: UTF8.self)
        guard let load = Double(text.split(separator: " ").first ?? "") else {
            throw IoTError(.malformedPayload, "bad /proc/loadavg")
        }
        return [DeviceRecord(deviceUID: "t-1", time: clock.now(), values: ["temp": .number(load)])]
    }
}

@Suite struct TransportBaseClassTests {
    @Test func streamTransportFramesIngestsAndAcknowledgesAfterTheReceipt() async throws {
        let h = try await IngestHarness()
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let device = SocketLineDevice(descriptor: fds[0], ingestor: h.ingestor)
        let task = Task { try await device.run() }
        let peer = FileDescriptorStream(descriptor: fds[1])
        let oversize = String(repeating: "x", count: 200)
        try await peer.write(
            Array("{\"ts\": 1, \"temp\": 1}\r\n{\"temp\": \n\(oversize)\n{\"ts\": 2, \"temp\": 2}\n".utf8))
        var received = ""
        while received.split(separator: "\n").count < 4, let chunk = try await peer.read() {
            received += String(decoding: chunk, as: UTF8.self)
        }
        #expect(received == "OK 1\nERR malformed_payload\nERR payload_too_large\nOK 2\n")
        try await h.drain()
        #expect(try await h.series("t-1", "temp").map(\.time) == [1, 2])
        let s = h.ingestor.statistics
        #expect(s.received == 4 && s.stored == 2 && s.rejected == ["malformed_payload": 1, "payload_too_large": 1])
        #expect(s.isBalanced)
        task.cancel()
        await peer.close()
        _ = try? await task.value
        await h.stop()
    }

    /// Issue 21, item 1: both base classes end on a graceful shutdown (what SIGTERM triggers in a
    /// ServiceGroup) within a second, and what was acknowledged is stored.
    @Test func bothBaseClassesEndOnGracefulShutdown() async throws {
        let h = try await IngestHarness(start: false)
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let device = SocketLineDevice(descriptor: fds[0], ingestor: h.ingestor)
        let poller = LoadAveragePoller(ingestor: h.ingestor, clock: h.clock)
        try await h.start([device, poller])
        let peer = FileDescriptorStream(descriptor: fds[1])
        defer { Task { await peer.close() } }
        try await peer.write(Array("{\"ts\": 7, \"temp\": 7}\n".utf8))
        var received = ""
        while !received.hasSuffix("\n"), let chunk = try await peer.read() {
            received += String(decoding: chunk, as: UTF8.self)
        }
        #expect(received.hasPrefix("OK "), "acknowledged: \(received)")
        let stopped = Mutex(false)
        let started = ContinuousClock.now
        let stopping = Task {
            await h.stop()
            stopped.withLock { $0 = true }
        }
        while !stopped.withLock({ $0 }) && ContinuousClock.now - started < .seconds(5) {
            try await Task.sleep(for: .milliseconds(5))
        }
        let took = ContinuousClock.now - started
        #expect(stopped.withLock { $0 }, "the ServiceGroup did not end within 5 s of a graceful shutdown")
        #expect(took < .seconds(1), "graceful shutdown took \(took)")
        if stopped.withLock({ $0 }) {
            #expect(try await h.series("t-1", "temp").map(\.time).contains(7), "the acknowledged point is stored")
        } else {
            stopping.cancel()
        }
    }

    /// Issue 21, item 3: a frame that arrives before the journal is replayed (back-pressure: nothing was
    /// accepted) is tried again after the suggested delay, with reading paused, and stored once the ingestor
    /// is ready; with `backpressureRetryMillis` 0 it is answered at once.
    @Test func aFrameRefusedForBackPressureIsRetriedAndStored() async throws {
        let h = try await IngestHarness(start: false)
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let device = SocketLineDevice(descriptor: fds[0], ingestor: h.ingestor)
        let task = Task { try await device.run() }
        let peer = FileDescriptorStream(descriptor: fds[1])
        try await peer.write(Array("{\"ts\": 5, \"temp\": 5}\n".utf8))
        // Refused (starting) at least once, to be tried again; waited for rather than slept on, as a loaded
        // machine may take longer than any fixed pause to read the frame.
        try await eventually { h.ingestor.statistics.dropped.values.reduce(0, +) >= 1 }
        try await h.start()
        var received = ""
        while !received.hasSuffix("\n"), let chunk = try await peer.read() {
            received += String(decoding: chunk, as: UTF8.self)
        }
        #expect(received == "OK 1\n")
        try await h.drain()
        #expect(try await h.series("t-1", "temp").map(\.time) == [5])
        let s = h.ingestor.statistics
        #expect(s.stored == 1 && (s.dropped.values.reduce(0, +)) >= 1 && s.isBalanced, "\(s)")
        task.cancel()
        await peer.close()
        _ = try? await task.value
        await h.stop()
    }

    /// Issue 21, item 3: a poll whose records meet back-pressure (the journal not replayed yet) is offered
    /// again after the suggested delay and stored with its own time, not dropped until the next poll.
    @Test func aPollRefusedForBackPressureIsOfferedAgainAndStored() async throws {
        let h = try await IngestHarness(start: false)
        let poller = LoadAveragePoller(ingestor: h.ingestor, clock: SystemClock())  // 1 s interval, first poll at once
        let task = Task { try await poller.run() }
        try await eventually { poller.status.successes >= 1 }  // polled, refused (starting), offered again
        let polledAt = try #require(poller.status.lastSuccessAt)
        try await h.start()
        let points = try await h.waitForPoints("t-1", "temp", count: 1, timeout: .seconds(10))
        // Without the retry every poll made before the start would be lost: the first stored one would be later.
        #expect(
            points[0].time <= polledAt, "a record polled before the start is stored: \(points[0].time - polledAt) ms")
        task.cancel()
        _ = try? await task.value
        await h.stop()
    }

    @Test func streamTransportSkipsAnOversizeFrameSpanningManyReads() async throws {
        let h = try await IngestHarness()
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let device = SocketLineDevice(descriptor: fds[0], ingestor: h.ingestor)
        let task = Task { try await device.run() }
        let peer = FileDescriptorStream(descriptor: fds[1])
        for _ in 0..<10 { try await peer.write(Array(String(repeating: "y", count: 50).utf8)) }
        try await peer.write(Array("\n{\"ts\": 3, \"temp\": 3}\n".utf8))
        var received = ""
        while received.split(separator: "\n").count < 2, let chunk = try await peer.read() {
            received += String(decoding: chunk, as: UTF8.self)
        }
        #expect(received == "ERR payload_too_large\nOK 1\n")
        task.cancel()
        await peer.close()
        _ = try? await task.value
        await h.stop()
    }

    @Test func pollingTransportPollsOnScheduleAndBacksOffWhileFailing() async throws {
        let h = try await IngestHarness()
        let poller = LoadAveragePoller(ingestor: h.ingestor, clock: h.clock, failFirst: 2)
        let task = Task { try await poller.run() }
        /// Waits until the poller has done `polls` polls and sleeps until its next one.
        func settled(polls: Int) async throws {
            try await eventually {
                poller.status.successes + poller.status.failures == polls && h.clock.sleeperCount == 1
            }
        }
        try await settled(polls: 1)  // the first poll runs at once (start delay 0) and fails
        #expect(poller.status.failures == 1)
        h.clock.advance(byMillis: 1_000)  // backoff is 2 s: nothing yet
        try await Task.sleep(for: .milliseconds(20))
        try await settled(polls: 1)
        h.clock.advance(byMillis: 1_000)  // 2 s: second failure, backoff 4 s
        try await settled(polls: 2)
        #expect(poller.status.failures == 2)
        h.clock.advance(byMillis: 4_000)  // recovers
        try await settled(polls: 3)
        #expect(poller.status.successes == 1 && poller.status.consecutiveFailures == 0)
        h.clock.advance(byMillis: 1_000)  // back on the 1 s schedule
        try await settled(polls: 4)
        #expect(poller.status.successes == 2)
        try await h.drain()
        #expect(try await h.series("t-1", "temp").count == 2)
        task.cancel()
        _ = try? await task.value
        await h.stop()
    }

    /// Issue 17, item 1: a poller's settings at the extremes are refused by `validate()`, and its schedule
    /// arithmetic saturates instead of trapping when they get past it.
    @Test(arguments: [Int64(0), -1, .max, .min])
    func pollingScheduleAtTheExtremes(value: Int64) async throws {
        let h = try await IngestHarness()
        defer { Task { await h.stop() } }
        let c = PollingTransport.Configuration(
            interval: .milliseconds(value), timeout: .milliseconds(value), backoffInitial: .milliseconds(value),
            backoffMax: .milliseconds(value), startDelay: .milliseconds(value))
        #expect(throws: IoTError.self) { try c.validate() }
        #expect(throws: Never.self) { try PollingTransport.Configuration().validate() }
        let poller = PollingTransport(
            name: "extreme", identity: DeviceIdentity(tenant: IngestHarness.tenant, deviceUID: "t-1"), configuration: c,
            ingestor: h.ingestor, clock: h.clock)
        let now = h.clock.now()
        _ = poller.firstPollTime()
        for _ in 0..<40 { #expect(poller.recordFailure(IoTError(.unavailable, "x")) >= now || value < 0) }
        _ = poller.recordSuccess(due: now)
        _ = poller.recordSuccess(due: .min)
        await h.stop()
    }

    /// Issue 20, item 7: a poller's `lastError` describes the current run of failures and is cleared by the
    /// next success, so a device that recovered does not show an old error.
    @Test func aSuccessClearsTheLastError() async throws {
        let h = try await IngestHarness()
        defer { Task { await h.stop() } }
        let poller = PollingTransport(
            name: "recovering", identity: DeviceIdentity(tenant: IngestHarness.tenant, deviceUID: "t-1"),
            ingestor: h.ingestor, clock: h.clock)
        _ = poller.recordFailure(IoTError(.unavailable, "connection refused"))
        #expect(poller.status.lastError?.contains("connection refused") == true)
        #expect(poller.status.consecutiveFailures == 1)
        _ = poller.recordSuccess(due: h.clock.now())
        #expect(poller.status.lastError == nil)
        #expect(poller.status.consecutiveFailures == 0 && poller.status.failures == 1)
    }

    @Test func pollingTransportTimesOutAHangingPoll() async throws {
        final class Hanging: PollingTransport, @unchecked Sendable {
            override func poll() async throws -> [DeviceRecord] {
                try await Task.sleep(for: .seconds(3600))
                return []
            }
        }
        let h = try await IngestHarness()
        let poller = Hanging(
            name: "hang", identity: DeviceIdentity(tenant: IngestHarness.tenant, deviceUID: "t-1"),
            configuration: .init(timeout: .milliseconds(500), startDelay: .zero), ingestor: h.ingestor, clock: h.clock)
        let task = Task { try await poller.run() }
        // Wait for the scheduler's sleep and the timeout's sleep, then let the timeout fire.
        for _ in 0..<2000 where h.clock.sleeperCount == 0 { try await Task.sleep(for: .milliseconds(1)) }
        h.clock.advance(byMillis: 0)
        for _ in 0..<2000 where h.clock.sleeperCount == 0 { try await Task.sleep(for: .milliseconds(1)) }
        h.clock.advance(byMillis: 500)
        for _ in 0..<2000 where poller.status.failures == 0 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(poller.status.failures == 1)
        #expect(poller.status.lastError?.contains("timeout") == true)
        task.cancel()
        _ = try? await task.value
        await h.stop()
    }
}

/// Waits until `condition` holds, checking every millisecond for up to five seconds.
func eventually(_ condition: () -> Bool) async throws {
    for _ in 0..<5_000 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(1))
    }
    Issue.record("condition not met within 5 s")
}
