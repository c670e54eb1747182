import Foundation
public import IoTCore
import Synchronization

/// A notification channel that appends each notification as one JSON line to a file: an audit trail, or the
/// input of a SIEM that tails it.
///
/// ```swift
/// let dispatcher = NotificationDispatcher(
///     outbox: outbox, notifiers: [JSONLinesNotifier(channel: "audit", path: "/var/log/iot/alarms.jsonl")],
///     clock: SystemClock(), tenants: { ["acme"] }, logger: logger)
/// ```
///
/// A file that cannot be opened is a failure retrying cannot fix (`invalidArgument`: the dispatcher
/// dead-letters the message at once); a write that fails (a full disk) is worth retrying (`unavailable`).
public final class JSONLinesNotifier: Notifier {
    /// The channel routing policies name.
    public let channel: String
    /// The file appended to.
    public let path: String
    private let lock = Mutex(())

    /// A channel appending to `path` (created if missing).
    public init(channel: String = "audit", path: String) {
        self.channel = channel
        self.path = path
    }

    /// Appends the notification as one line of JSON.
    public func send(_ notification: IoTCore.Notification) async throws {
        var line = try JSONEncoder().encode(notification)
        line.append(UInt8(ascii: "\n"))
        try lock.withLock { _ throws(IoTError) in
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw IoTError(
                    .invalidArgument,
                    "cannot open \(path) (errno \(errno)); check that its folder exists and is writable")
            }
            defer { close(fd) }
            let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == line.count else {
                throw IoTError(.unavailable, "appending to \(path) failed (errno \(errno)); it is retried")
            }
        }
    }
}
