public import IoTCore
import Synchronization

/// A ``Notifier`` that records what it is asked to send, and can be told to fail: for tests of
/// routing, retries, rate limits and digests without a peer.
///
/// ```swift
/// let webhook = RecordingNotifier(channel: "webhook")
/// webhook.failNext(2, with: IoTError(.unavailable, "HTTP 503"))
/// // … run the dispatcher …
/// #expect(webhook.sent.count == 1)
/// ```
public final class RecordingNotifier: Notifier {
    private struct State {
        var sent: [Notification] = []
        var attempts = 0
        var failures: [IoTError] = []
        var failAlways: IoTError?
    }

    public let channel: String
    private let state = Mutex(State())

    /// Creates a notifier for `channel`.
    public init(channel: String) { self.channel = channel }

    /// Notifications accepted so far, in order.
    public var sent: [Notification] { state.withLock { $0.sent } }
    /// Calls of ``send(_:)`` so far, failed ones included.
    public var attempts: Int { state.withLock { $0.attempts } }

    /// Makes the next `count` sends throw `error`.
    public func failNext(_ count: Int, with error: IoTError) {
        state.withLock { $0.failures += Array(repeating: error, count: count) }
    }

    /// Makes every send throw `error` (`nil` stops that).
    public func failAlways(_ error: IoTError?) {
        state.withLock { $0.failAlways = error }
    }

    public func send(_ notification: Notification) async throws {
        try state.withLock { s throws(IoTError) in
            s.attempts += 1
            if let e = s.failAlways { throw e }
            if !s.failures.isEmpty { throw s.failures.removeFirst() }
            s.sent.append(notification)
        }
    }
}
