import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Posts telemetry to a running iotd and changes its SQLite files with the `sqlite3` shell.
private struct BehindTheBack {
    let client: LoopbackHTTPClient

    init(_ iotd: IotdProcess) throws { client = try LoopbackHTTPClient(port: iotd.httpPort) }

    /// The status of one telemetry post of `device` with `token`.
    func post(_ device: String, _ token: String) throws -> Int {
        try client.request(
            "POST", "/api/v1/devices/\(device)/telemetry",
            headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
            body: Array(#"{"kwh": 1}"#.utf8)
        ).status
    }

    /// Runs `sql` on the database `file` with the `sqlite3` shell, as an operator would.
    func sqlite(_ file: String, _ sql: String) throws {
        let shell = try ChildProcess(["/usr/bin/sqlite3", "-cmd", ".timeout 5000", file, sql])
        #expect(shell.wait() == 0, "sqlite3 \(sql)")
    }

    /// Posts every 50 ms until refused (5 s at most); the seconds that took.
    func secondsUntilRefused(_ device: String, _ token: String) throws -> Double {
        let start = ContinuousClock.now
        while try post(device, token) == 200, ContinuousClock.now - start < .seconds(5) { usleep(50_000) }
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
    }

    /// The statuses of 15 posts 200 ms apart (3 s).
    func postsForThreeSeconds(_ device: String, _ token: String) throws -> [Int] {
        try (0..<15).map { _ in
            usleep(200_000)
            return try post(device, token)
        }
    }
}

/// The gateway keeps a token's lookup for as long as the credential store's revision stays the same (a device
/// that posts every ten seconds is not looked up every time), and a revocation still takes effect within a
/// second: tried on `iotd serve` with tokens deleted by the `sqlite3` shell behind its back.
@Suite(.serialized) struct CredentialRevisionTests {
    @Test func aTokenDeletedBehindIotdsBackIsRefusedWithinASecondWhileLookupsAreKeptOtherwise() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-revision")
            try iotd.configure(
                iotd.preamble() + """
                    tenants: [{ id: acme, products: [{ id: meter, signals: [{ name: kwh }] }], devices: [{ uid: d-1, product: meter }, { uid: d-2, product: meter }] }]
                    """)
            try iotd.start()
            defer { iotd.stop() }
            let system = iotd.dataDirectory + "/system.sqlite"
            let shell = try BehindTheBack(iotd)
            func sqlite(_ sql: String) throws { try shell.sqlite(system, sql) }

            // A revocation made straight in the database (its trigger raises the revision) holds within a second.
            let first = try iotd.issueToken(tenant: "acme", device: "d-1")
            #expect(try shell.post("d-1", first) == 200)
            try sqlite("DELETE FROM tokens WHERE device = 'd-1'")
            let revoked = try shell.secondsUntilRefused("d-1", first)
            #expect(revoked < 1.5, "refused after \(revoked) s")
            #expect(try shell.post("d-1", first) == 401)

            // The lookup is kept beyond the one-second lifetime while the revision stays the same: a row deleted
            // with the trigger dropped goes unseen for as long as the device keeps posting…
            let second = try iotd.issueToken(tenant: "acme", device: "d-2")
            #expect(try shell.post("d-2", second) == 200)
            try sqlite("DROP TRIGGER tokens_delete_revision; DELETE FROM tokens WHERE device = 'd-2'")
            let statuses = try shell.postsForThreeSeconds("d-2", second)
            #expect(statuses.allSatisfy { $0 == 200 }, "kept for 3 s: \(statuses)")
            // …and refused within a second once the revision changes.
            try sqlite("UPDATE credentials_revision SET value = value + 1")
            let raised = try shell.secondsUntilRefused("d-2", second)
            #expect(raised < 1.5, "refused after \(raised) s")
        }
    }

    /// The same for the ingestor's device cache (`registryCacheMillis`) and a device deleted from the tenant's
    /// database.
    @Test func aDeviceDeletedBehindIotdsBackIsRefusedWithinTheCacheLifetimeWhileKeptOtherwise() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-registry-revision")
            try iotd.configure(
                iotd.preamble() + """
                    ingest: { registryCacheMillis: 1000 }
                    tenants: [{ id: acme, products: [{ id: meter, signals: [{ name: kwh }] }], devices: [{ uid: d-1, product: meter }, { uid: d-2, product: meter }] }]
                    """)
            try iotd.start()
            defer { iotd.stop() }
            let tenant = iotd.dataDirectory + "/tenants/acme.sqlite"
            let shell = try BehindTheBack(iotd)
            let tokens = try ["d-1", "d-2"].map { try iotd.issueToken(tenant: "acme", device: $0) }
            func post(_ i: Int) throws -> Int { try shell.post("d-\(i + 1)", tokens[i]) }
            func secondsUntilRefused(_ i: Int) throws -> Double {
                try shell.secondsUntilRefused("d-\(i + 1)", tokens[i])
            }
            func sqlite(_ sql: String) throws { try shell.sqlite(tenant, sql) }

            #expect(try post(0) == 200)
            #expect(try post(1) == 200)
            try sqlite("DELETE FROM devices WHERE uid = 'd-1'")
            let deleted = try secondsUntilRefused(0)
            #expect(deleted < 1.5, "refused after \(deleted) s")

            // d-2 was read before that deletion raised the revision: it is read again after the lifetime.
            for _ in 0..<8 {
                #expect(try post(1) == 200)
                usleep(200_000)
            }
            try sqlite("DROP TRIGGER devices_delete_revision; DELETE FROM devices WHERE uid = 'd-2'")
            let statuses = try shell.postsForThreeSeconds("d-2", tokens[1])
            #expect(statuses.allSatisfy { $0 == 200 }, "kept for 3 s: \(statuses)")
            try sqlite("UPDATE registry_revision SET value = value + 1")
            let raised = try secondsUntilRefused(1)
            #expect(raised < 1.5, "refused after \(raised) s")
        }
    }
}
