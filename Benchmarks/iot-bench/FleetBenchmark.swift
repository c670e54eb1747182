import Foundation
import IoTTestSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The cost of a fleet (issue 22, item 8), measured from outside on `iotd serve`: 10,000 devices provisioned in
/// one bulk call, each with its own token, send 10-signal messages over HTTP keep-alive, one per device per 10 s
/// (1,000 msg/s), then one per device per second (an overload on 2 cores), then the first rate again; each
/// device's first message (its token and registry entry looked up, then cached) is measured apart. iotd's
/// resident memory (peak and after the overload), CPU per message (utime + stime of its process over the
/// messages it stored) and bytes written per message (the journal and SQLite's WAL with its checkpoints: a message
/// dirties pages of each of its series, so this grows as the series do) are printed, beside the CPU per point of
/// the same points sent as batches of 100 in the same run. Goals: peak RSS ≤ 150 MB, ≤ 0.1 ms of CPU per
/// 10-signal message, RSS after the overload within 20 % of before.
///
/// Each message carries the time it is sent (its device's clock, in ms), as a device's reading does, so each
/// series' points fill its minutes and hours as they would. The store builds a minute's rollup rows once the
/// minute has closed; here it closes as soon as it ends (`rollupDelaySeconds: 0`, the default waits 2 minutes
/// for late points), and a phase lasts a minute, so each phase pays for about one closing: the rate at which a
/// fleet pays for them.
func runFleetBenchmark(_ options: BenchOptions) async throws {
    let devices = options.points ?? (options.smoke ? 500 : 10_000)
    let phase = options.smoke ? 2.0 : 60.0
    let threads = options.smoke ? 4 : 16
    print("== fleet: \(grouped(Double(devices))) devices with their own tokens over HTTP keep-alive, on iotd serve")
    let iotd = IotdProcess("iot-bench-fleet")
    let signals = (0..<10).map { "{ name: s\($0) }" }.joined(separator: ", ")
    try iotd.configure(
        iotd.preamble() + """
            storage: { rollupDelaySeconds: 0 }
            tenants: [{ id: fleet, products: [{ id: meter, signals: [\(signals)] }] }]
            """)
    try iotd.start()
    defer { iotd.stop() }
    guard let pid = iotd.process?.pid else { throw BenchError("iotd did not start") }

    let uids = (0..<devices).map { "f-\($0)" }
    let created = try iotd.api(
        "POST", "/api/v1/tenants/fleet/devices/bulk",
        #"{"devices":["# + uids.map { #"{"uid":"\#($0)","product":"meter"}"# }.joined(separator: ",") + "]}")
    let answer = try JSONSerialization.jsonObject(with: Data(created.text.utf8)) as? [String: Any]
    let tokens = (answer?["devices"] as? [[String: String]] ?? []).compactMap { $0["token"] }
    guard created.status == 201, tokens.count == devices else {
        throw BenchError("bulk provisioning answered \(created.status): \(created.text.prefix(200))")
    }
    let port = iotd.httpPort

    /// Sends one message per device every `period` seconds for `seconds`, on `threads` keep-alive connections;
    /// the messages stored (200) and refused (503).
    func load(period: Double, seconds: Double, batch: Int = 1) async throws -> (stored: Int, refused: Int) {
        let counts = FleetCounts()
        let (uids, tokens, threads) = (uids, tokens, threads)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<threads {
                group.addTask {
                    try await onThread {
                        let client = try LoopbackHTTPClient(port: port)
                        let mine = Array(stride(from: t, to: devices, by: threads))
                        let interval = period / Double(mine.count)
                        let start = monotonicSeconds()
                        var k = 0
                        while monotonicSeconds() - start < seconds {
                            let due = start + Double(k) * interval
                            let wait = due - monotonicSeconds()
                            if wait > 0 { usleep(useconds_t(wait * 1e6)) }
                            let device = mine[k % mine.count]
                            let n = counts.sent.add(1, ordering: .relaxed).newValue
                            let records = (0..<batch).map { b in
                                let values = (0..<10).map { #""s\#($0)":\#((n + b + $0) % 1000)"# }.joined(
                                    separator: ",")
                                // Now, in ms; a batch's records 1 ms apart (a device's messages are 1 s or more apart).
                                let ts = Int64(Date().timeIntervalSince1970 * 1_000) + Int64(b)
                                return #"{"ts":\#(ts),\#(values)}"#
                            }
                            let body = batch == 1 ? records[0] : "[" + records.joined(separator: ",") + "]"
                            let r = try client.request(
                                "POST", "/api/v1/devices/\(uids[device])/telemetry",
                                headers: [
                                    "Authorization": "Bearer \(tokens[device])", "Content-Type": "application/json",
                                ],
                                body: Array(body.utf8))
                            if r.status == 200 {
                                counts.stored.add(1, ordering: .relaxed)
                            } else if r.status == 503 {
                                counts.refused.add(1, ordering: .relaxed)
                            } else {
                                throw BenchError("device \(uids[device]): \(r.status) \(r.text.prefix(200))")
                            }
                            k += 1
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        return (counts.stored.load(ordering: .relaxed), counts.refused.load(ordering: .relaxed))
    }

    func measured(_ run: () async throws -> (stored: Int, refused: Int)) async throws -> (
        stored: Int, refused: Int, cpu: Double, seconds: Double, written: Double
    ) {
        let cpu = processCPUSeconds(pid: pid) ?? 0
        let written = writtenBytes(pid)
        let t = monotonicSeconds()
        let r = try await run()
        // What was acknowledged is committed moments later; that work counts too.
        usleep(500_000)
        return (
            r.stored, r.refused, (processCPUSeconds(pid: pid) ?? 0) - cpu, monotonicSeconds() - t,
            writtenBytes(pid) - written
        )
    }

    let idle = residentKiB(pid)
    // Each device's first message looks its token and registry entry up (the router's path); every later one
    // finds them cached. Measured apart, so that the phases below are the steady state.
    let first = try await measured { try await load(period: 10, seconds: options.smoke ? phase : 10) }
    let steady = try await measured { try await load(period: 10, seconds: phase) }
    let before = residentKiB(pid)
    let (beforeHeap, beforeFile) = (statusKiB(pid, "RssAnon"), statusKiB(pid, "RssFile"))
    let overload = try await measured { try await load(period: 1, seconds: phase) }
    let peak = peakResidentKiB(pid)
    let after = try await measured { try await load(period: 10, seconds: phase) }
    usleep(UInt32(phase * 1e6 / 2))
    let afterRSS = residentKiB(pid)
    let (afterHeap, afterFile) = (statusKiB(pid, "RssAnon"), statusKiB(pid, "RssFile"))
    let batches = try await measured { try await load(period: Double(devices) / 100, seconds: phase / 2, batch: 100) }

    func perMessage(_ m: (stored: Int, refused: Int, cpu: Double, seconds: Double, written: Double)) -> String {
        String(
            format: "%.0f msg/s stored, %.0f refused/s, %.3f ms CPU per message, %.1f KB written per message",
            Double(m.stored) / m.seconds, Double(m.refused) / m.seconds, m.cpu / Double(max(1, m.stored)) * 1_000,
            m.written / Double(max(1, m.stored)) / 1_024)
    }
    let single = steady.cpu / Double(max(1, steady.stored)) / 10
    let batched = batches.cpu / Double(max(1, batches.stored * 100 * 10))
    print(
        "rss: idle \(idle / 1_024) MB, at 1 msg/device/10 s \(before / 1_024) MB (heap \(beforeHeap / 1_024) MB, file pages \(beforeFile / 1_024) MB), peak \(peak / 1_024) MB (goal ≤ 150 MB)"
    )
    print("first message of each device (its token and registry entry looked up): \(perMessage(first))")
    print("one message per device per 10 s: \(perMessage(steady)) (goal ≤ 0.1 ms)")
    print("one per device per second (overload): \(perMessage(overload))")
    print("back to one per 10 s: \(perMessage(after))")
    print(
        String(
            format:
                "rss after the overload: %d MB, %+.0f %% of before; heap %d MB, %+.0f %% of before (goal within 20 %%); file pages %d MB",
            afterRSS / 1_024, (Double(afterRSS) / Double(max(1, before)) - 1) * 100, afterHeap / 1_024,
            (Double(afterHeap) / Double(max(1, beforeHeap)) - 1) * 100, afterFile / 1_024))
    print(
        String(
            format:
                "CPU per point: %.1f µs in single 10-signal messages vs %.1f µs in batches of 100 messages (%.1f×)",
            single * 1e6, batched * 1e6, single / max(batched, 1e-12)))
    // A crash at exit (the heap corrupted under load, a hung shutdown) fails the run, whatever it measured.
    let status = iotd.stop()
    guard status == 0 else {
        throw BenchError("iotd did not stop cleanly after the run (wait status \(status)); its output is above")
    }
}

/// What the load threads counted.
private final class FleetCounts: Sendable {
    let sent = Atomic<Int>(0)
    let stored = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
}

/// The bytes a process has handed to `write` and its kin so far (`wchar` of `/proc/<pid>/io`): the journal, the
/// SQLite WAL and its checkpoints, whether or not they reached the disk yet.
private func writtenBytes(_ pid: Int32) -> Double {
    guard let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return 0 }
    for line in io.split(separator: "\n") where line.hasPrefix("wchar:") {
        return Double(line.split(separator: " ").last ?? "") ?? 0
    }
    return 0
}

/// A `Vm…:` line of `/proc/<pid>/status`, in KiB.
func statusKiB(_ pid: Int32, _ key: String) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix(key + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    return 0
}

private func residentKiB(_ pid: Int32) -> Int { statusKiB(pid, "VmRSS") }
private func peakResidentKiB(_ pid: Int32) -> Int { statusKiB(pid, "VmHWM") }
