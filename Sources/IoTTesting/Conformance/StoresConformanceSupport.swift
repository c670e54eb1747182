import IoTCore

/// Helpers shared by the store conformance suites (registry, credentials, rule state, statistics, outbox).
enum StoresConformanceSupport {
    /// Runs `body` and requires it to throw an ``IoTError`` with `code`.
    static func expectError(
        _ code: IoTError.Code, _ what: String, file: String = #fileID, line: Int = #line,
        _ body: () async throws -> Void
    ) async throws {
        do {
            try await body()
        } catch let error as IoTError {
            try conformEqual(error.code, code, "\(what): error code", file: file, line: line)
            return
        } catch {
            throw ConformanceFailure("\(what): expected IoTError(\(code)), got \(error)", file: file, line: line)
        }
        throw ConformanceFailure("\(what): expected IoTError(\(code)), but it succeeded", file: file, line: line)
    }
}
