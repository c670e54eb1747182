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
        var token = ""
        let acknowledged = Mutex(Set<Int>())
        let next = Mutex(0)
        for run in 0..<3 {
            let server = try iotd.start()
            if token.isEmpty { token = try iotd.issueToken(tenant: "crash", device: "dev") }
            let killAfter = acknowledged.withLock { $0.count } + 300 + run * 200
            let group = DispatchGroup()
            let auth = ["Authorization": "Bearer \(token)"]
            for _ in 0..<4 {
                DispatchQueue.global().async(group: group) {
                    guard let client = try? LoopbackHTTPClient(port: iotd.httpPort) else { return }
                    while true {
                        let seq = next.withLock { n in
                            defer { n += 1 }
                            return n
                        }
                        let body = #"{"ts": \#(1_700_000_000_000 + Int64(seq)), "seq": \#(seq)}"#
                        guard
                            let r = try? client.request(
                                "POST", "/api/v1/devices/dev/telemetry", headers: auth, body: Array(body.utf8))
                        else { return }  // the daemon is gone
                        if r.status == 200 {
                            acknowledged.withLock { _ = $0.insert(seq) }
                        } else if r.status != 503 {
                            Issue.record("unexpected answer \(r.status): \(r.text)")
                            return
                        }
                    }
                }
            }
            let deadline = Date().addingTimeInterval(60)
            while acknowledged.withLock({ $0.count }) < killAfter && Date() < deadline { usleep(1_000) }
            #expect(acknowledged.withLock { $0.count } >= killAfter, "run \(run): too little acknowledged in 60 s")
            #expect(server.stop(signal: SIGKILL) & 0x7f == SIGKILL)
            group.wait()
        }
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
        let acked = acknowledged.withLock { $0 }
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
