import Foundation

#if canImport(Glibc)
    public import Glibc
#endif

/// A real Redis server for a test or a benchmark: Debian's `redis-server` on a loopback port (a free one unless
/// given), no persistence, its files in a temporary directory, stopped by its PID when the value is released or
/// by ``stop()``.
///
/// ```swift
/// let redis = try RedisServer()
/// let url = redis.url   // redis://127.0.0.1:PORT/0
/// ```
public final class RedisServer: @unchecked Sendable {
    /// The port it listens on (127.0.0.1).
    public let port: Int
    private let directory = TemporaryDirectory("redis")
    private let process: ChildProcess

    /// `redis://127.0.0.1:PORT/0`.
    public var url: String { "redis://127.0.0.1:\(port)/0" }

    /// Starts the server and returns once it accepts connections.
    ///
    /// - Throws: when `redis-server` cannot start or does not listen within 10 s.
    public init(port: Int? = nil) throws {
        self.port = port ?? ChildProcess.freeLoopbackPort()
        process = try ChildProcess([
            "/usr/bin/env", "redis-server", "--port", "\(self.port)", "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", directory.path,
        ])
        do {
            try ChildProcess.waitForLoopbackPort(self.port)
        } catch {
            process.stop(signal: SIGKILL)
            throw error
        }
    }

    /// Stops the server (`signal`: SIGTERM, or SIGKILL to crash it); later calls do nothing.
    public func stop(signal: Int32 = SIGTERM) { process.stop(signal: signal) }

    deinit { process.stop(signal: SIGKILL) }
}
