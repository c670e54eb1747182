import Foundation
import IoTCore
import IoTPlatform
import IoTTesting
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Issue 18, item 3: the platform built from one configuration, with one layer replaced (the point store)
/// and two added (a transport and a notification channel), run as a `Service` and stopped gracefully.
@Suite struct IoTPlatformTests {
    final class Counter: PollingTransport, @unchecked Sendable {
        private let n = Mutex(0.0)
        override func poll() async throws -> [DeviceRecord] {
            let value = n.withLock { n in
                n += 1
                return n
            }
            return [DeviceRecord(deviceUID: identity.deviceUID, time: clock.now(), values: ["count": .number(value)])]
        }
    }

    @Test func aReplacedStoreAnAddedTransportAndAnAddedChannel() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("iot-platform-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let configuration = try PlatformConfiguration(
            yaml: """
                dataDirectory: \(dir.path)
                http: { port: 0 }
                management: { port: 0, adminAPIKey: test-admin-key-0123456789abcdef0123 }
                tenants:
                  - id: lab
                    products: [{ id: counter, signals: [{ name: count }] }]
                    devices: [{ uid: c-1, product: counter }]
                    rules:
                      - { kind: range, id: high, devices: { product: counter }, signal: count, max: 2,
                          alarmWhen: outside, severity: major, debounce: { count: 1 }, hysteresis: 0 }
                    notifications:
                      policies: [{ id: p, match: { minSeverity: info }, targets: [{ channel: pager }] }]
                """, environment: [:])
        let points = InMemoryPointStore()
        let pager = RecordingNotifier(channel: "pager")
        let layers = IoTPlatform.Layers(
            pointStore: points,
            transports: [
                { gateway in
                    Counter(
                        name: "counter", identity: DeviceIdentity(tenant: "lab", deviceUID: "c-1"),
                        configuration: .init(intervalMillis: 50, startDelayMillis: 0), gateway: gateway)
                }
            ],
            notifiers: [pager])
        let platform = try IoTPlatform(configuration: configuration, layers: layers)
        #expect(platform.services.contains { $0 is Counter }, "the added transport runs with the others")
        let group = ServiceGroup(services: [platform], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let deadline = ContinuousClock.now + .seconds(20)
            while pager.sent.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            // The HTTP listener of the configuration answers beside the added transport.
            let (http, management) = try await platform.listeningPorts()
            #expect(http > 0 && management > 0 && http != management)
            let stopping = ContinuousClock.now
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            let took = ContinuousClock.now - stopping
            #expect(took < .seconds(1), "graceful shutdown of the whole platform took \(took)")
        }
        #expect(pager.sent.first?.body.contains("c-1") == true, "the alarm reached the added channel")
        let latest = try await points.latest(.tenant("lab"), device: "c-1", signals: nil)
        #expect((latest.first?.value.numericValue ?? 0) >= 3, "the points went to the replaced store: \(latest)")
    }
}
