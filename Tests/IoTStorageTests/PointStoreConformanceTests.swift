import Foundation
import IoTCore
import IoTStorage
import IoTTesting
import Testing

/// A fresh temporary data directory per test, removed afterwards.
struct TemporaryDirectory: ~Copyable {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("iot-points-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct PointStoreConformanceTests {
    @Test(arguments: PointStoreConformance.checks)
    func sqlite(_ check: ConformanceCheck<any PointStore>) async throws {
        let dir = TemporaryDirectory()
        let storage = try SQLiteStorage(configuration: .init(directory: dir.path))
        try await check.run(SQLitePointStore(storage: storage))
    }

    @Test(arguments: PointStoreConformance.checks)
    func inMemory(_ check: ConformanceCheck<any PointStore>) async throws {
        try await check.run(InMemoryPointStore())
    }
}
