import Dispatch

/// Runs blocking SQLite work on a dedicated serial queue and resumes the caller when it finished.
///
/// SQLite calls block on disk I/O; running them here keeps them off Swift's cooperative thread pool.
/// One executor per connection: work on it is serialised.
final class SQLiteExecutor: Sendable {
    private let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label)
    }

    /// Runs `body` on the executor's thread.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body() })
            }
        }
    }

    /// Runs `body` on the executor's thread and blocks the calling thread until it finished.
    /// For synchronous callers that are not on the cooperative pool (C threads, startup).
    func runSync<T>(_ body: () throws -> T) rethrows -> T {
        try queue.sync(execute: body)
    }
}
