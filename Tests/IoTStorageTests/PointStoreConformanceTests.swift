import Foundation
import IoTCore
import IoTStorage
import IoTTestSupport
import IoTTesting
import Testing

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
