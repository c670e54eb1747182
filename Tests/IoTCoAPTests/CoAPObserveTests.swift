import Foundation
import IoTCore
import IoTProtocols
import IoTTestSupport
import IoTTesting
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The platform observing a resource on an aiocoap server that changes it every 100 ms.
@Suite("CoAP observe", .serialized)
struct CoAPObserveTests {
    /// Starts the aiocoap observable server on `port` (0: a port it picks); waits for its "ready" line.
    private func startServer(_ port: Int = 0) throws -> (ChildProcess, Int) {
        try startAiocoapServer(port: port)
    }

    private func waitFor(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<300 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("timed out waiting for \(what)")
    }

    @Test("create, monitor, re-register after the device restarts, remove")
    func observeLifecycle() async throws {
        let h = try await CoAPHarness()
        let manager = CoAPObserverManager(
            configuration: .init(reregisterAfter: .milliseconds(600)), ingestor: h.ingestor,
            logger: Logger(label: "observe-test"))
        let run = Task { try await manager.run() }
        var (server, port) = try startServer()
        defer { server.stop(signal: SIGKILL) }

        let spec = CoAPObservationSpec(
            id: "boiler", uri: "coap://127.0.0.1:\(port)/temp", tenant: CoAPHarness.tenant.rawValue, deviceUID: "t-1")
        #expect(try manager.create(spec).state == "registering")
        #expect(throws: IoTError.self) { try manager.create(spec) }  // duplicate id
        #expect(throws: IoTError.self) {
            try manager.create(CoAPObservationSpec(id: "x", uri: "http://nope", tenant: "acme", deviceUID: "t-1"))
        }
        try await waitFor("5 stored notifications") { (manager.report(id: "boiler")?.stored ?? 0) >= 5 }
        let first = try #require(manager.report(id: "boiler"))
        #expect(first.state == "observing" && first.rejected == 0, "\(first)")
        let value = try await h.waitForPoint("t-1", "temp")
        #expect(value != nil)
        #expect(manager.list().map(\.spec.id) == ["boiler"])

        // The device restarts (its observer list is gone): the manager re-registers and data flows again.
        server.stop(signal: SIGKILL)
        (server, _) = try startServer(port)
        let storedBefore = manager.report(id: "boiler")?.stored ?? 0
        try await waitFor("notifications after the restart") {
            (manager.report(id: "boiler")?.stored ?? 0) >= storedBefore + 5
        }
        let after = try #require(manager.report(id: "boiler"))
        #expect(after.registrations >= 2, "\(after)")

        try manager.remove(id: "boiler")
        #expect(manager.list().isEmpty)
        #expect(throws: IoTError.self) { try manager.remove(id: "boiler") }
        // `received` counts a notification when it enters the ingestor (`stored` only once the store
        // commits it, which may lag behind on a loaded machine).
        let received = h.ingestor.statistics.received
        try await Task.sleep(for: .milliseconds(500))
        #expect(h.ingestor.statistics.received <= received + 1)  // at most one in flight when removed
        #expect(h.ingestor.statistics.isBalanced)
        run.cancel()
        _ = try? await run.value
        await h.stop()
    }
}

struct ObserveTestError: Error, CustomStringConvertible {
    var description: String
}
