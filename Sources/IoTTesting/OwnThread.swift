import Foundation

/// Runs `body` on a thread of its own and returns what it returns (or throws what it throws).
///
/// For test code that blocks: reading a child process's output, a blocking loopback HTTP client, polling
/// with `usleep`, starting a broker that takes seconds. Swift runs tests on its cooperative pool, which has
/// one thread per CPU (two on a small CI machine): two such tests blocking it at once stall every `async`
/// test of the process for as long, and their timeouts fail without a cause.
///
/// ```swift
/// @Test func aBlockingClientIsAnswered() async throws {
///     let port = try await transport.listeningPort()
///     let status = try await onOwnThread { try blockingPost(port: port, body: "{}") }  // your blocking client
///     #expect(status == 200)
/// }
/// ```
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        let thread = Thread { c.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20  // as a main thread's: test bodies may recurse through large frames
        thread.start()
    }
}
