import Foundation
import IoTStorage
import IoTTestSupport

/// Runs `body` with a fresh `SQLiteStorage` in its own temporary directory under /tmp, removed after.
func withStoresTemporaryStorage<T>(_ body: (SQLiteStorage, String) async throws -> T) async throws -> T {
    let directory = NSTemporaryDirectory() + "iot-stores-test-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let storage = try SQLiteStorage(configuration: .init(directory: directory))
    return try await body(storage, directory)
}
