import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 22, item 5: iotd's data directory on a small tmpfs that the test mounts and fills. Ingest answers 503
/// (never 500, never a crash) while nothing can be journaled, resumes by itself once space is freed, and every
/// message answered 200 is stored, also after a kill -9 and a restart.
@Suite(.serialized) struct DiskFullTests {
    @Test func aFullDiskRefusesWithout500sLosesNothingAndRecovers() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-disk-full")
            let data = iotd.dataDirectory
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            let mount = try ChildProcess(["/bin/mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", data])
            guard mount.wait() == 0 else {
                Issue.record("cannot mount a tmpfs on \(data): the test needs root (CAP_SYS_ADMIN), as CI runs it")
                return
            }
            defer { _ = try? ChildProcess(["/bin/umount", "-l", data]).wait() }

            let signals = (0..<20).map { "{ name: s\($0) }" }.joined(separator: ", ")
            try iotd.configure(
                iotd.preamble() + """
                    tenants: [{ id: acme, products: [{ id: p, signals: [{ name: seq }, \(signals)] }], devices: [{ uid: d, product: p }] }]
                    """)
            var server = try iotd.start()
            defer { iotd.stop(signal: SIGKILL) }
            let token = try iotd.issueToken(tenant: "acme", device: "d")
            var client = try LoopbackHTTPClient(port: iotd.httpPort)
            var acknowledged: [Int] = []
            var statuses: [Int: Int] = [:]
            var seq = 0
            /// Sends one message of 21 points; its status.
            func send() throws -> Int {
                let values = (0..<20).map { #""s\#($0)": \#(Double(seq) + 0.5)"# }.joined(separator: ", ")
                let r = try client.request(
                    "POST", "/api/v1/devices/d/telemetry",
                    headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                    body: Array(#"{"ts": \#(1_700_000_000_000 + seq), "seq": \#(seq), \#(values)}"#.utf8))
                statuses[r.status, default: 0] += 1
                if r.status == 200 { acknowledged.append(seq) }
                if r.status == 503 { #expect(r.headers["retry-after"] != nil, "503 without Retry-After") }
                seq += 1
                return r.status
            }
            for _ in 0..<200 { _ = try send() }
            #expect(statuses == [200: 200], "\(statuses)")

            // Fill the file system; then send until the journal's room ahead is used up and ingest refuses.
            let filler = try ChildProcess([
                "/bin/sh", "-c", "dd if=/dev/zero of='\(data)/filler' bs=64k 2>/dev/null; sync",
            ])
            _ = filler.wait()
            var refusedInARow = 0
            let deadline = Date().addingTimeInterval(90)
            while refusedInARow < 20 && Date() < deadline {
                refusedInARow = try send() == 503 ? refusedInARow + 1 : 0
            }
            #expect(refusedInARow == 20, "ingest never refused on a full disk: \(statuses)")
            #expect(Set(statuses.keys).isSubset(of: [200, 503]), "only 200 and 503 while full: \(statuses)")
            #expect(try iotd.api("GET", "/readyz").status == 200, "iotd runs on")

            // Space again: ingest resumes by itself.
            #expect(unlink(data + "/filler") == 0)
            let resumeBy = Date().addingTimeInterval(30)
            var resumed = false
            while !resumed && Date() < resumeBy {
                resumed = try send() == 200
                if !resumed { usleep(100_000) }
            }
            #expect(resumed, "ingest did not resume within 30 s of freeing space: \(statuses)")
            for _ in 0..<100 { #expect(try send() == 200) }

            // Everything acknowledged is stored, also after kill -9 and a restart (it was journaled, not only held).
            func stored() throws -> Set<Int> {
                let text = try iotd.api("GET", "/api/v1/tenants/acme/devices/d/series/seq?limit=100000").text
                let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                let points = (object?["points"] as? [[String: Any]]) ?? []
                return Set(points.compactMap { ($0["value"] as? Double).map { Int($0) } })
            }
            try eventually("every acknowledged message stored", seconds: 30) {
                try Set(acknowledged).isSubset(of: stored())
            }
            iotd.stop(signal: SIGKILL)
            server = try iotd.start()
            _ = server
            client = try LoopbackHTTPClient(port: iotd.httpPort)
            try eventually("every acknowledged message stored after kill -9", seconds: 30) {
                try Set(acknowledged).isSubset(of: stored())
            }
            print("disk full: \(statuses[200] ?? 0) acknowledged, \(statuses[503] ?? 0) refused with 503, all stored")
        }
    }

}
