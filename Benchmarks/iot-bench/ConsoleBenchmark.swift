import Foundation
import IoTTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The console's API calls with 10,000 devices (issue 23, item 7), measured from outside on `iotd serve`, as
/// the signed-in operator the console runs as: the overview, a page of the device list (plain, searched, filtered
/// by status), a device, its latest values, its 7-day chart at 1 Hz (served from the rollups: ≤ 2,000 points
/// sent) and the open alarms. Each call's p50 and p95 are printed beside `/healthz` on the same listener in the
/// same run (the round trip with no work). Goal: every call p95 ≤ 50 ms.
func runConsoleBenchmark(_ options: BenchOptions) async throws {
    let devices = options.points ?? (options.smoke ? 500 : 10_000)
    let days = options.smoke ? 1 : 7
    let repeats = options.smoke ? 20 : 200
    print(
        "== console: its API calls with \(grouped(Double(devices))) devices, a \(days)-day chart at 1 Hz, on iotd serve"
    )
    let iotd = IotdProcess("iot-bench-console")
    let signals = (0..<10).map { "{ name: s\($0) }" }.joined(separator: ", ")
    try iotd.configure(
        iotd.preamble() + """
            tenants:
              - id: fleet
                products: [{ id: meter, signals: [\(signals)] }]
                rules: [{ kind: range, id: high, devices: { product: meter }, signal: s0, max: 990, alarmWhen: outside, severity: minor, debounce: { count: 1 }, hysteresis: 1 }]
            """)
    try iotd.start()
    defer { iotd.stop() }

    // The fleet: tokens from one bulk call, one 10-signal message from each device (so each has an activity and
    // latest values), a few alarms.
    let uids = (0..<devices).map { "f-\($0)" }
    let created = try iotd.api(
        "POST", "/api/v1/tenants/fleet/devices/bulk",
        #"{"devices":["#
            + uids.enumerated().map { i, uid in
                #"{"uid":"\#(uid)","product":"meter","name":"Meter \#(i)","tags":{"site":"site-\#(i % 20)"}}"#
            }.joined(separator: ",") + "]}")
    let answer = try JSONSerialization.jsonObject(with: Data(created.text.utf8)) as? [String: Any]
    let tokens = (answer?["devices"] as? [[String: String]] ?? []).compactMap { $0["token"] }
    guard created.status == 201, tokens.count == devices else {
        throw BenchError("bulk provisioning answered \(created.status): \(created.text.prefix(200))")
    }
    let port = iotd.httpPort
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for t in 0..<4 {
            group.addTask {
                try await onThread {
                    let client = try LoopbackHTTPClient(port: port)
                    for d in stride(from: t, to: devices, by: 4) {
                        // Every 50th device once over the rule's range: an open alarm.
                        let values = (0..<10).map { #""s\#($0)":\#(d % 50 == 0 && $0 == 0 ? 999 : d % 900)"# }
                        let r = try client.request(
                            "POST", "/api/v1/devices/\(uids[d])/telemetry",
                            headers: ["Authorization": "Bearer \(tokens[d])", "Content-Type": "application/json"],
                            body: Array(("{" + values.joined(separator: ",") + "}").utf8))
                        guard r.status == 200 else { throw BenchError("device \(uids[d]): \(r.status) \(r.text)") }
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    // The chart's device: one point a second for `days` days, in batches of 3,600.
    let seconds = days * 86_400
    let start = monotonicSeconds()
    try await onThread {
        let client = try LoopbackHTTPClient(port: port)
        for hour in 0..<(seconds / 3_600) {
            let records = (0..<3_600).map { s in
                let t = now - Int64(seconds) * 1_000 + Int64(hour * 3_600 + s) * 1_000
                return #"{"ts":\#(t),"values":{"s1":\#(Double(s % 600) / 10)}}"#
            }
            let body = Array(("[" + records.joined(separator: ",") + "]").utf8)
            while true {
                let r = try client.request(
                    "POST", "/api/v1/devices/f-1/telemetry",
                    headers: ["Authorization": "Bearer \(tokens[1])", "Content-Type": "application/json"], body: body)
                if r.status == 200 { break }
                // The store is behind: wait as told, as a device would.
                guard r.status == 503 else { throw BenchError("history: \(r.status) \(r.text.prefix(200))") }
                usleep(200_000)
            }
        }
    }
    print(
        "fleet ready: \(grouped(Double(devices))) devices, \(grouped(Double(seconds))) points of history in \(String(format: "%.1f", monotonicSeconds() - start)) s"
    )

    // The console's user: an operator of the tenant, signed in.
    let made = try iotd.api(
        "POST", "/api/v1/tenants/fleet/users",
        #"{"username": "olga", "roles": ["operator"], "password": "correct horse battery"}"#)
    guard made.status == 201 else { throw BenchError("the user was not created: \(made.text)") }
    let login = try LoopbackHTTPClient(port: iotd.apiPort).request(
        "POST", "/api/v1/auth/login", headers: ["Content-Type": "application/json"],
        body: Array(#"{"tenant": "fleet", "username": "olga", "password": "correct horse battery"}"#.utf8))
    guard login.status == 200,
        let signedIn = try JSONSerialization.jsonObject(with: Data(login.body)) as? [String: Any],
        let access = signedIn["accessToken"] as? String
    else { throw BenchError("sign-in answered \(login.status): \(login.text)") }
    try waitUntil("every device's message is committed") {
        let r = try IotdProcess.api(port: iotd.apiPort, "GET", "/api/v1/tenants/fleet/overview")
        return r.text.contains(#""online":\#(devices)"#)
    }

    // As the console asks: at most 1,000 buckets of whole minutes, aligned (rollups only, no raw point read).
    let span = Int64(days) * 86_400_000
    let bucket = max(60_000, (span + 59_999_999) / 60_000_000 * 60_000)
    let to = (now + 60_000 + 59_999) / 60_000 * 60_000
    let from = (now + 60_000 - span) / bucket * bucket
    let calls: [(name: String, path: (Int) -> String)] = [
        ("GET /healthz (reference)", { _ in "/healthz" }),
        ("overview", { _ in "/api/v1/tenants/fleet/overview" }),
        ("device list, a page of 50", { i in "/api/v1/tenants/fleet/devices?limit=50&offset=\((i * 50) % devices)" }),
        ("device list, searched", { i in "/api/v1/tenants/fleet/devices?limit=50&q=site-\(i % 20)" }),
        ("device list, offline only", { _ in "/api/v1/tenants/fleet/devices?limit=50&status=offline" }),
        ("a device", { i in "/api/v1/tenants/fleet/devices/f-\(i % devices)" }),
        ("its latest values", { i in "/api/v1/tenants/fleet/devices/f-\(i % devices)/latest" }),
        (
            "\(days)-day chart (means of \(bucket / 60_000) min)",
            { _ in "/api/v1/tenants/fleet/devices/f-1/series/s1?from=\(from)&to=\(to)&agg=mean&bucket=\(bucket)" }
        ),
        ("open alarms", { _ in "/api/v1/tenants/fleet/alarms?open=true&limit=1000" }),
    ]
    let client = try LoopbackHTTPClient(port: iotd.apiPort)
    var worst = 0.0
    for call in calls {
        var times: [Double] = []
        var bytes = 0
        var body: [UInt8] = []
        for i in 0..<repeats {
            let t = monotonicSeconds()
            let r = try client.request("GET", call.path(i), headers: ["Authorization": "Bearer \(access)"])
            times.append(monotonicSeconds() - t)
            guard r.status == 200 else { throw BenchError("\(call.name): \(r.status) \(r.text.prefix(200))") }
            bytes = r.body.count
            body = r.body
        }
        times.sort()
        let p95 = percentile(times, 0.95) * 1_000
        if !call.name.hasSuffix("(reference)") { worst = max(worst, p95) }
        var note = ""
        if call.name.contains("chart"),
            let series = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let buckets = series["buckets"] as? [Any]
        {
            note = ", \(buckets.count) points sent (goal ≤ 2,000)"
        }
        print(
            String(
                format: "%@ p50 %6.2f ms  p95 %6.2f ms  %7d bytes%@",
                call.name.padding(toLength: 36, withPad: " ", startingAt: 0) as NSString,
                percentile(times, 0.5) * 1_000, p95, bytes, note as NSString))
    }
    print(String(format: "slowest console call: p95 %.2f ms (goal ≤ 50 ms)", worst))
}

/// Polls `condition` every 100 ms for up to 60 s.
private func waitUntil(_ what: String, _ condition: () throws -> Bool) throws {
    let deadline = monotonicSeconds() + 60
    while monotonicSeconds() < deadline {
        if try condition() { return }
        usleep(100_000)
    }
    throw BenchError("timed out waiting until \(what)")
}
