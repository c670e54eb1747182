import Foundation
import IoTTestSupport
import Synchronization
import Testing

/// Starts `iotd` `runs` times; each time four connections post sequence-numbered points (`{"ts", "seq"}`) to
/// `device` until at least 300 more (200 more each run) were acknowledged, then the daemon is killed with
/// SIGKILL mid-stream. Returns the token issued at the first start and the sequence numbers answered 200.
func postNumberedPointsKillingIotd(_ iotd: IotdProcess, tenant: String, device: String, runs: Int) throws -> (
    token: String, acknowledged: Set<Int>
) {
    var token = ""
    let acknowledged = Mutex(Set<Int>())
    let next = Mutex(0)
    for run in 0..<runs {
        let server = try iotd.start()
        if token.isEmpty { token = try iotd.issueToken(tenant: tenant, device: device) }
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
                            "POST", "/api/v1/devices/\(device)/telemetry", headers: auth, body: Array(body.utf8))
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
        #expect(
            acknowledged.withLock { $0.count } >= killAfter, "run \(run): the daemon acknowledged too little in 60 s")
        let status = server.stop(signal: SIGKILL)
        #expect(status & 0x7f == SIGKILL)
        group.wait()
    }
    return (token, acknowledged.withLock { $0 })
}
