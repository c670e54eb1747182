import Foundation
import IoTCore
import IoTTestSupport
import IoTTesting
import Logging
import Synchronization
import Testing

let testLogger: Logger = {
    var l = Logger(label: "notification-tests")
    l.logLevel = .warning
    return l
}()

/// The folder of this test target's Python peers.
let resources: String = {
    let file = #filePath
    return String(file[..<file.lastIndex(of: "/")!]) + "/Resources"
}()

struct PeerFailure: Error, CustomStringConvertible { var description: String }

/// A real peer process (a Python sink or SMTP server): stdout lines collected by a reader thread;
/// stopped by its PID in ``stop()`` (and at the latest in `deinit`).
final class Peer: @unchecked Sendable {
    private let child: ChildProcess
    private final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func withLock<R>(_ body: (inout [String]) -> R) -> R { lines.withLock { body(&$0) } }
    }
    private let collected = Lines()
    private let done = DispatchSemaphore(value: 0)
    private var stopped = false

    /// The real interpreter: `python3` on the PATH may be a shim (pyenv) whose PID is not the server's.
    static let python: String = {
        guard let probe = try? ChildProcess(["/usr/bin/env", "python3", "-c", "import sys; print(sys.executable)"])
        else {
            return "/usr/bin/python3"
        }
        let path = probe.readLine() ?? "/usr/bin/python3"
        probe.wait()
        return path
    }()

    init(_ arguments: [String]) throws {
        child = try ChildProcess([Self.python] + arguments)
        let reader = UncheckedChild(child: child)
        Thread.detachNewThread { [collected, done] in
            while let line = reader.child.readLine() { collected.withLock { $0.append(line) } }
            done.signal()
        }
        guard waitUntil(seconds: 20, { $0.contains { $0.hasPrefix("READY") } }) else {
            stop()
            throw PeerFailure(
                description:
                    "\(arguments.joined(separator: " ")) did not start within 20 s (is python3 with aiosmtpd installed? scripts/test.sh installs it)"
            )
        }
    }

    /// The JSON lines printed so far (READY excluded).
    var records: [[String: Any]] {
        collected.withLock { $0 }.compactMap { line in
            guard line.hasPrefix("{") else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
    }

    func records(channel: String) -> [[String: Any]] { records.filter { $0["channel"] as? String == channel } }

    @discardableResult
    func waitUntil(seconds: Double, _ condition: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(collected.withLock { $0 }) { return true }
            usleep(20_000)
        }
        return condition(collected.withLock { $0 })
    }

    @discardableResult
    func waitForRecords(_ seconds: Double, _ condition: ([[String: Any]]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(records) { return true }
            usleep(20_000)
        }
        return condition(records)
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        // SIGKILL: a child of the test runner may inherit SIGTERM blocked, and a sink has nothing to save.
        child.stop(signal: SIGKILL)
        done.wait()
    }

    deinit { stop() }

    static func httpSink(port: Int, extra: [String] = []) throws -> Peer {
        try Peer(["-u", resources + "/notify_sink.py", "--port", String(port)] + extra)
    }

    static func smtp(port: Int, extra: [String] = []) throws -> Peer {
        try Peer(["-u", resources + "/smtp_sink.py", "--port", String(port)] + extra)
    }
}

/// The reader thread is the only one that reads the child's stdout; `stop()` waits for it before the
/// child is released.
private struct UncheckedChild: @unchecked Sendable { let child: ChildProcess }

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// Runs a dispatcher in the background for the duration of `body`.
func withDispatcher<T>(_ dispatcher: NotificationDispatcher, _ body: () async throws -> T) async throws -> T {
    let task = Task { try await dispatcher.run() }
    defer { task.cancel() }
    let result = try await body()
    task.cancel()
    _ = await task.result
    return result
}

/// A self-signed certificate for 127.0.0.1 made by the openssl command: (cert, key) paths.
func makeTestCertificate(in dir: String) throws -> (String, String) {
    let cert = dir + "/cert.pem"
    let key = dir + "/key.pem"
    let child = try ChildProcess([
        "/usr/bin/env", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
        "-days",
        "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    ])
    while child.readLine() != nil {}
    let status = child.wait()
    guard status == 0, FileManager.default.fileExists(atPath: cert) else {
        throw PeerFailure(description: "openssl could not make a test certificate (status \(status)); install openssl")
    }
    return (cert, key)
}

let acme = AccessScope.tenant("acme")

func outboxMessage(
    _ id: String, channel: String, recipient: String = "r", key: String? = nil, body: String? = nil, created: Int64 = 0
)
    -> OutboxMessage
{
    OutboxMessage(
        id: id, channel: channel, recipient: recipient, subject: "subject \(id)", body: body ?? "body of \(id)",
        orderingKey: key, createdAt: created)
}

/// A response body parsed as JSON, or `nil`.
func json(_ r: LoopbackHTTPClient.Response) -> Any? { try? JSONSerialization.jsonObject(with: Data(r.body)) }
