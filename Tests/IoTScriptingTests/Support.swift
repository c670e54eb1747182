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
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        guard let pid = Int32(name) else { continue }
        guard let f = fopen("/proc/\(pid)/stat", "r") else { continue }
        var buf = [CChar](repeating: 0, count: 512)
        let line = fgets(&buf, 512, f).map { _ in String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self) } ?? ""
        fclose(f)
        // pid (comm) state ppid ...
        guard line.contains("(iot-js-worker)"), let close = line.lastIndex(of: ")") else { continue }
        let fields = line[line.index(after: close)...].split(separator: " ")
        if fields.count > 1, Int32(fields[1]) == me { pids.append(pid) }
    }
    return pids
}
