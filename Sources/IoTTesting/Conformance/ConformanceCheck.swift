/// One named check of a conformance suite, run against a fresh store.
///
/// Suites (`PointStoreConformance`, `RegistryStoreConformance`, …) expose `checks`; a test runs each
/// against a new instance of the implementation under test:
///
/// ```swift
/// @Test(arguments: PointStoreConformance.checks)
/// func sqlite(_ check: ConformanceCheck<any PointStore>) async throws {
///     try await check.run(try makeSQLiteStore())
/// }
/// ```
public struct ConformanceCheck<Store>: Sendable, CustomStringConvertible {
    /// What the check verifies, one line.
    public let name: String
    private let body: @Sendable (Store) async throws -> Void

    /// Creates a check.
    public init(_ name: String, _ body: @escaping @Sendable (Store) async throws -> Void) {
        self.name = name
        self.body = body
    }

    /// Runs the check; throws ``ConformanceFailure`` when the store does not conform.
    public func run(_ store: Store) async throws {
        try await body(store)
    }

    public var description: String { name }
}

/// A store did not behave as its protocol's contract says.
public struct ConformanceFailure: Error, CustomStringConvertible {
    /// The failed expectation.
    public let message: String
    /// Where in the suite.
    public let location: String

    /// Creates a failure.
    public init(_ message: String, file: String = #fileID, line: Int = #line) {
        self.message = message
        self.location = "\(file):\(line)"
    }

    public var description: String { "\(message) (\(location))" }
}

/// Throws a ``ConformanceFailure`` unless `condition` holds.
public func conform(
    _ condition: Bool, _ message: @autoclosure () -> String, file: String = #fileID, line: Int = #line
) throws {
    if !condition { throw ConformanceFailure(message(), file: file, line: line) }
}

/// Throws a ``ConformanceFailure`` unless `actual == expected`.
public func conformEqual<T: Equatable>(
    _ actual: T, _ expected: T, _ what: @autoclosure () -> String, file: String = #fileID, line: Int = #line
) throws {
    if actual != expected {
        throw ConformanceFailure("\(what()): expected \(expected), got \(actual)", file: file, line: line)
    }
}
