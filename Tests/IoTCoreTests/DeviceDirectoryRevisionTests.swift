import IoTTesting
import Synchronization
import Testing

@testable import IoTCore

/// The ingestor's device cache keeps a device past its lifetime while the tenant's registry revision holds, and
/// sees a change made behind its back within the lifetime.
@Suite struct DeviceDirectoryRevisionTests {
    let acme: TenantID = "acme"
    var pump: DeviceIdentity { DeviceIdentity(tenant: acme, deviceUID: "pump-1") }

    func directory() async throws -> (DeviceDirectory, CountingRegistry, ManualClock) {
        let registry = CountingRegistry(revisions: true)
        try await registry.saveTenant(Tenant(id: acme))
        try await registry.saveProduct(.tenant(acme), Product(id: "p", signals: [Signal(name: "temp")]))
        try await registry.saveDevice(.tenant(acme), Device(uid: "pump-1", product: "p", name: "Pump"))
        let clock = ManualClock(now: 0)
        return (
            DeviceDirectory(registry: registry, clock: clock, ttlMillis: 5_000, negativeTTLMillis: 1_000), registry,
            clock
        )
    }

    @Test func aDeviceIsKeptWhileTheRevisionHoldsAndReadAgainOnceItChanges() async throws {
        let (directory, registry, clock) = try await directory()
        _ = try await directory.tenant(acme)
        await directory.readRevision(of: acme)
        #expect(try await directory.device(pump)?.device.name == "Pump")
        #expect(registry.deviceReads == 1)
        for second in stride(from: 2, through: 20, by: 2) {
            clock.advance(to: Int64(second) * 1_000)
            await directory.readRevision(of: acme)
            #expect(try await directory.device(pump)?.device.name == "Pump")
        }
        #expect(registry.deviceReads == 1, "kept for 20 s on an unchanged revision")
        #expect(registry.productReads == 1)

        // Changed behind the directory's back (no invalidate): seen once the revision is read again.
        try await registry.base.saveDevice(.tenant(acme), Device(uid: "pump-1", product: "p", name: "Renamed"))
        clock.advance(to: 21_000)
        #expect(try await directory.device(pump)?.device.name == "Pump", "confirmed 1 s ago")
        await directory.readRevision(of: acme)
        #expect(try await directory.device(pump)?.device.name == "Renamed")
        #expect(registry.deviceReads == 2)
    }

    @Test func withoutAConfirmationADeviceLivesForTheLifetimeOnly() async throws {
        let (directory, registry, clock) = try await directory()
        _ = try await directory.tenant(acme)
        await directory.readRevision(of: acme)
        _ = try await directory.device(pump)
        clock.advance(to: 4_999)
        _ = try await directory.device(pump)
        #expect(registry.deviceReads == 1)
        clock.advance(to: 5_000)  // no read confirmed the revision for a lifetime
        _ = try await directory.device(pump)
        #expect(registry.deviceReads == 2)
    }

    @Test func anUnknownDeviceIsRememberedForTheShortLifetimeOnly() async throws {
        let (directory, registry, clock) = try await directory()
        _ = try await directory.tenant(acme)
        await directory.readRevision(of: acme)
        let ghost = DeviceIdentity(tenant: acme, deviceUID: "ghost")
        #expect(try await directory.device(ghost) == nil)
        clock.advance(to: 1_000)
        await directory.readRevision(of: acme)
        #expect(try await directory.device(ghost) == nil)
        #expect(registry.deviceReads == 2, "looked up again after 1 s")
    }
}
