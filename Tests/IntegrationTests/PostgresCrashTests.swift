import Foundation
import IoTTestSupport
import Synchronization
import Testing

/// Issue 24, item 1: `iotd` with every store in PostgreSQL (a real server started by the test). The journal stays
/// local and each batch commits with the instance's journal watermark: across `kill -9` nothing acknowledged is
/// lost, and a second instance with its own data directory reads what the first stored.
@Suite(.serialized) struct PostgresCrashTests {
    @Test func killNineWhilePostingLosesNothingAndASecondInstanceSeesIt() throws {
        let pg = try PostgresServer()
        defer { pg.stop() }
        let iotd = IotdProcess("iotd-pg-crash")
        let setup = """
            storage: { postgres: { url: "\(pg.url)", schemaPrefix: crash } }
            tenants:
              - id: crash
                products:
                  - { id: counter, signals: [{ name: seq }] }
                devices:
                  - { uid: dev, product: counter }
            """
        try iotd.configure(iotd.preamble(logLevel: "warning") + setup)
        let (token, acked) = try postNumberedPointsKillingIotd(iotd, tenant: "crash", device: "dev", runs: 3)
        // Restart once more: the journal's entries past this instance's watermark are replayed, then a graceful
        // stop drains everything into PostgreSQL.
        let server = try iotd.start()
        #expect(server.stop(signal: SIGTERM) == 0, "graceful stop")

        let psql = try ChildProcess([
            "/usr/bin/env", "psql", "-X", "-A", "-t", "-F", " ", "-d", pg.url, "-c",
            #"SELECT num::bigint, count(*) FROM "crash_crash".points GROUP BY 1"#,
        ])
        var stored: [Int: Int] = [:]
        while let line = psql.readLine(timeoutSeconds: 60) {
            let fields = line.split(separator: " ").compactMap { Int($0) }
            if fields.count == 2 { stored[fields[0]] = fields[1] }
        }
        #expect(psql.wait(timeoutSeconds: 60) == 0, "psql")
        #expect(acked.count >= 3 * 300)
        let missing = acked.filter { stored[$0] == nil }.sorted()
        #expect(missing.isEmpty, "acknowledged but not stored: \(missing.count), first \(missing.prefix(20))")
        #expect(stored.values.allSatisfy { $0 == 1 }, "each point once")

        // A second instance (its own data directory and journal) on the same database answers for the same
        // device: the registry, the credentials and the points are shared.
        let second = IotdProcess("iotd-pg-second")
        try second.configure(second.preamble(logLevel: "warning") + setup)
        let other = try second.start()
        defer { other.stop() }
        let body = #"{"ts": 1800000000000, "seq": -1}"#
        let client = try LoopbackHTTPClient(port: second.httpPort)
        let r = try client.request(
            "POST", "/api/v1/devices/dev/telemetry", headers: ["Authorization": "Bearer \(token)"],
            body: Array(body.utf8))
        #expect(r.status == 200, "the first instance's token works at the second: \(r.status) \(r.text)")
        var latest = try second.api("GET", "/api/v1/tenants/crash/devices/dev/latest")
        let until = Date().addingTimeInterval(10)
        while !latest.text.contains("-1") && Date() < until {
            usleep(50_000)
            latest = try second.api("GET", "/api/v1/tenants/crash/devices/dev/latest")
        }
        #expect(latest.status == 200 && latest.text.contains("-1"), "\(latest.text)")
        #expect(other.stop(signal: SIGTERM) == 0)
    }
}
