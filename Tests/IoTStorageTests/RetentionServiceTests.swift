import IoTCore
import IoTStorage
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct RetentionServiceTests {
    @Test func deletesOldPointsOfEveryTenantAndKeepsAggregatesExact() async throws {
        let dir = makeTempDirectory("iot-retention")
        defer { _ = system("rm -rf '\(dir)'") }
        let storage = try SQLiteStorage(configuration: .init(directory: dir))
        let day: Int64 = 86_400_000
        let store = SQLitePointStore(storage: storage, configuration: .init(retention: .milliseconds(2) * day))
        let clock = ManualClock(now: 10 * day)
        for tenant in ["a", "b"] as [TenantID] {
            let points = (0..<10).map {
                Point(device: "d", signal: "s", time: Int64($0) * day + 1_000, value: .number(Double($0)))
            }
            try await store.write(PointBatch(tenant: tenant, points: points, journalSequence: 1))
        }
        let service = RetentionService(store: store, storage: storage, clock: clock)
        #expect(await service.runOnce() == 2 * 8)  // days 0…7 are older than 10 days − 2 days
        for tenant in ["a", "b"] as [TenantID] {
            let left = try await store.range(
                .tenant(tenant), series: SeriesKey(device: "d", signal: "s"), from: 0, to: .max, limit: nil,
                order: .ascending)
            #expect(left.map(\.value) == [.number(8), .number(9)])
            let agg = try await store.aggregate(
                .tenant(tenant), series: SeriesKey(device: "d", signal: "s"), from: 0, to: 11 * day, bucketMillis: nil)
            #expect(agg.first?.count == 2 && agg.first?.sum == 17)
        }
    }
}
