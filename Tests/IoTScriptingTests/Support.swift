import IoTCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Expects `body` to throw an ``IoTError`` with `code`, and returns it.
@discardableResult
func expectError(
    _ code: IoTError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async -> IoTError? {
    do {
        try await body()
        Issue.record("expected \(code), but it succeeded", sourceLocation: sourceLocation)
    } catch let error as IoTError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected IoTError \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Monotonic milliseconds.
func nowMillis() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
}

/// The pids of live `iot-js-worker` children of this process.
func workerChildren() -> [Int32] {
    let me = getpid()
    guard let dir = opendir("/proc") else { return [] }
    defer { closedir(dir) }
    var pids: [Int32] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) {
            String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        guard let pid = Int32(name) else { continue }
        guard let f = fopen("/proc/\(pid)/stat", "r") else { continue }
        var buf = [CChar](repeating: 0, count: 512)
        let line =
            fgets(&buf, 512, f).map { _ in
                String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            } ?? ""
        fclose(f)
        // pid (comm) state ppid ...
        guard line.contains("(iot-js-worker)"), let close = line.lastIndex(of: ")") else { continue }
        let fields = line[line.index(after: close)...].split(separator: " ")
        if fields.count > 1, Int32(fields[1]) == me { pids.append(pid) }
    }
    return pids
}

/// This process's `iot-js-worker` children once `done` holds for them, or after 2 s: workers killed on
/// timeout are reaped in the background.
func settledWorkerChildren(_ done: ([Int32]) -> Bool) async -> [Int32] {
    var pids = workerChildren()
    for _ in 0..<200 where !done(pids) {
        try? await Task.sleep(for: .milliseconds(10))
        pids = workerChildren()
    }
    return pids
}

/// Runs `body` on this thread and measures its wall-clock and CPU milliseconds (CPU time is what a
/// budget really bounds; wall-clock time also counts waiting for a core on a loaded machine).
func measured(_ body: () throws -> Void) -> (wall: Double, cpu: Double, error: (any Error)?) {
    func cpuMillis() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }
    let wall0 = nowMillis()
    let cpu0 = cpuMillis()
    var failure: (any Error)?
    do { try body() } catch { failure = error }
    return (nowMillis() - wall0, cpuMillis() - cpu0, failure)
}
