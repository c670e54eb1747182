import Synchronization

/// The port a listener bound, handed from the server's start-up callback to whoever awaits it.
///
/// Waiters are resumed once the listener is bound, or with an error when the listener stopped or failed
/// before binding. Transports that listen on a socket use it to implement `listeningPort()`, which tests
/// and hosts need when the configured port is 0 (any free port).
///
/// ```swift
/// let port = ListeningPort(component: "device HTTP listener")
/// // in the server's on-running callback:  port.bound(channel.localAddress!.port!)
/// // when the server stops:                 port.stopped("shut down")
/// let bound = try await port.wait()
/// ```
public final class ListeningPort: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Int, any Error>])
        case bound(Int)
        case stopped(IoTError)
    }
    private let state = Mutex(State.waiting([]))
    private let component: String

    /// Creates a pending port; `component` names the listener in error messages.
    public init(component: String) {
        self.component = component
    }

    /// Records the bound port and resumes every waiter.
    public func bound(_ port: Int) {
        let waiters = state.withLock { s -> [CheckedContinuation<Int, any Error>] in
            guard case .waiting(let w) = s else { return [] }
            s = .bound(port)
            return w
        }
        for w in waiters { w.resume(returning: port) }
    }

    /// Records that the listener stopped (or never started) and fails every waiter.
    public func stopped(_ reason: String) {
        let error = IoTError(.unavailable, "the \(component) is not listening: \(reason)")
        let waiters = state.withLock { s -> [CheckedContinuation<Int, any Error>] in
            let w: [CheckedContinuation<Int, any Error>]
            if case .waiting(let pending) = s { w = pending } else { w = [] }
            s = .stopped(error)
            return w
        }
        for w in waiters { w.resume(throwing: error) }
    }

    /// The bound port; waits until the listener is bound.
    public func wait() async throws -> Int {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Int, any Error>) in
            let result = state.withLock { s -> Result<Int, IoTError>? in
                switch s {
                case .waiting(var w):
                    w.append(c)
                    s = .waiting(w)
                    return nil
                case .bound(let port): return .success(port)
                case .stopped(let error): return .failure(error)
                }
            }
            if let result { c.resume(with: result.mapError { $0 as any Error }) }
        }
    }
}
