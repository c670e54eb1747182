import AuditNotifier
import Foundation
import IoTCore
import IoTTesting
import Logging
import ServiceLifecycle
import Testing

@Suite struct JSONLinesNotifierTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)").path

    /// Through the real dispatcher: what is enqueued ends as one line per message, and is marked delivered.
    @Test func theDispatcherDeliversEachMessageAsOneLine() async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/alarms.jsonl"
        let outbox = InMemoryOutbox()
        let clock = SystemClock()
        let dispatcher = NotificationDispatcher(
            outbox: outbox, notifiers: [JSONLinesNotifier(channel: "audit", path: path)], clock: clock,
            tenants: { ["acme"] }, logger: Logger(label: "test"))
        for i in 1...3 {
            try await outbox.enqueue(
                .tenant("acme"),
                OutboxMessage(
                    id: "m\(i)", channel: "audit", recipient: "soc", subject: "pump-\(i): overheat", body: "95 °C",
                    createdAt: clock.now()))
        }
        let group = ServiceGroup(services: [dispatcher], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await dispatcher.wake("acme")
            for _ in 0..<100 where try await outbox.messages(.tenant("acme"), status: .delivered, limit: 10).count < 3 {
                try await Task.sleep(for: .milliseconds(50))
            }
            await group.triggerGracefulShutdown()
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        let first = try JSONDecoder().decode(IoTCore.Notification.self, from: Data(lines[0].utf8))
        #expect(first.recipient == "soc" && first.subject == "pump-1: overheat" && first.body == "95 °C")
        #expect(try await outbox.messages(.tenant("acme"), status: .delivered, limit: 10).count == 3)
    }

    /// A file that cannot be opened is refused as a failure retrying cannot fix.
    @Test func anUnopenableFileIsNotRetried() async throws {
        let notifier = JSONLinesNotifier(path: directory + "/missing-folder/alarms.jsonl")
        await #expect(throws: IoTError.self) {
            do {
                try await notifier.send(
                    IoTCore.Notification(id: "m", channel: "audit", recipient: "soc", body: "b"))
            } catch let error as IoTError {
                #expect(error.code == .invalidArgument)
                throw error
            }
        }
    }
}
