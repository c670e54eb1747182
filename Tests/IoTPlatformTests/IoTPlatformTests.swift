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

    /// A platform on its own folder with a replaced store, the counter transport added and a `pager` channel;
    /// the tenant's rule raises an alarm at the third count and routes it to the pager.
    struct Fixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "iot-platform-\(UUID().uuidString)")
        let points = InMemoryPointStore()
        let pager = RecordingNotifier(channel: "pager")
        let platform: IoTPlatform

        init() throws {
            let configuration = try PlatformConfiguration(
                yaml: """
                    dataDirectory: \(directory.path)
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
            let layers = IoTPlatform.Layers(
                pointStore: points,
                transports: [
                    { gateway in
                        Counter(
                            name: "counter", identity: DeviceIdentity(tenant: "lab", deviceUID: "c-1"),
                            configuration: .init(interval: .milliseconds(50), startDelay: .zero), gateway: gateway)
                    }
                ],
                notifiers: [pager])
            platform = try IoTPlatform(configuration: configuration, layers: layers)
        }

        /// Runs the platform until the pager has the alarm (at most 20 s), then triggers a graceful shutdown
        /// and waits for it; how long the shutdown took.
        func runUntilTheAlarm() async throws -> Duration {
            defer { try? FileManager.default.removeItem(at: directory) }
            let group = ServiceGroup(services: [platform], logger: Logger(label: "test"))
            return try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let deadline = ContinuousClock.now + .seconds(20)
                while pager.sent.isEmpty, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                // The HTTP listener of the configuration answers beside the added transport.
                let (http, management) = try await platform.listeningPorts()
                #expect(http > 0 && management > 0 && http != management)
                let stopping = ContinuousClock.now
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return ContinuousClock.now - stopping
            }
        }
    }

    @Test func aReplacedStoreAnAddedTransportAndAnAddedChannel() async throws {
        let f = try Fixture()
        #expect(f.platform.services.contains { $0 is Counter }, "the added transport runs with the others")
        _ = try await f.runUntilTheAlarm()
        #expect(f.pager.sent.first?.body.contains("c-1") == true, "the alarm reached the added channel")
        let latest = try await f.points.latest(.tenant("lab"), device: "c-1", signals: nil)
        #expect((latest.first?.value.numericValue ?? 0) >= 3, "the points went to the replaced store: \(latest)")
    }

    /// Issue 21, item 1, for the platform as a `Service`: listeners, ingestor, rules, dispatcher and an added
    /// transport end within a second of a graceful shutdown. (A timed test: scripts/test.sh runs it alone.)
    @Test func thePlatformEndsWithinASecondOfAGracefulShutdown() async throws {
        let took = try await Fixture().runUntilTheAlarm()
        #expect(took < .seconds(1), "graceful shutdown of the whole platform took \(took)")
    }
}
