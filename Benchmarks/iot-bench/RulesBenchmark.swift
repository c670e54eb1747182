import IoTCore
import IoTRules
import IoTTesting
import Logging

#if canImport(Glibc)
    import Glibc
#endif

// The rules benchmark:
// 1. Range-rule evaluations/s through `RuleEngine.pointsCommitted`: 10k range rules (one per device,
//    count debounce and hysteresis), batches of one point per device, ~2% of samples crossing the bound
//    so debounce counters change and state is saved (batched, every second of clock time) to a
//    `RuleStateStore`. Goal ≥ 5M evaluations/s.
// 2. Joint-rule evaluation latency: 2,500 joint rules × 4 parameters (10k parameters live, count
//    windows of 10 with mean/max/delta/last), one sample per call, p50/p99 of `pointsCommitted`; and one
//    timer tick that evaluates every joint rule.

private let base: Int64 = 1_700_000_000_000

func runRulesBenchmark(_ options: BenchOptions) async throws {
    try await rangeRules(options)
    try await jointRules(options)
}

private func rangeRules(_ options: BenchOptions) async throws {
    let ruleCount = options.smoke ? 1_000 : 10_000
    let rounds = options.smoke ? 50 : 1_000
    let clock = ManualClock(now: base)
    let store = InMemoryRuleStateStore()
    let engine = RuleEngine(clock: clock, stateStore: store, logger: Logger(label: "bench"))
    let tenant: TenantID = "bench"
    for i in 0..<ruleCount {
        try await engine.add(
            .range(
                RangeRule(
                    id: "r\(i)", devices: .device("device-\(i)"), signal: "temp", max: 80,
                    debounce: .count(3), hysteresis: 2)),
            tenant: tenant)
    }
    await engine.flush()
    let batches: [PointBatch] = (0..<16).map { k in
        PointBatch(
            tenant: tenant,
            points: (0..<ruleCount).map { i in
                let hot = (i + k) % 50 == 0
                return Point(
                    device: "device-\(i)", signal: "temp", time: base + Int64(k),
                    value: .number(hot ? 90 : 20 + Double(i % 50)))
            }, journalSequence: 0)
    }
    // Warm up.
    for b in batches { await engine.pointsCommitted(b) }
    let before = await engine.evaluationCount
    let start = monotonicSeconds()
    let cpuStart = processCPUSeconds()
    for r in 0..<rounds {
        clock.advance(byMillis: 100)  // state is saved every 10 rounds (1 s of clock time)
        await engine.pointsCommitted(batches[r % batches.count])
    }
    await engine.flush()
    let elapsed = monotonicSeconds() - start
    let cpu = processCPUSeconds() - cpuStart
    let evaluations = await engine.evaluationCount - before
    let rate = Double(evaluations) / elapsed
    let cpuRate = Double(evaluations) / cpu
    let saved = try await store.states(.tenant(tenant), ruleID: "r0", originators: nil)
    print(
        "rules range: \(grouped(Double(ruleCount))) rules, \(grouped(Double(evaluations))) evaluations in "
            + "\(format2(elapsed)) s = \(grouped(rate)) evaluations/s wall, \(grouped(cpuRate)) per CPU-second "
            + "(goal ≥ 5,000,000 per CPU-second of the engine's one core: \(cpuRate >= 5_000_000 ? "met" : "NOT met")); state saved: \(!saved.isEmpty ? "yes" : "no"), "
            + "\(await engine.storeFailureCount) store failures")
}

private func jointRules(_ options: BenchOptions) async throws {
    let ruleCount = options.smoke ? 250 : 2_500
    let calls = options.smoke ? 5_000 : 50_000
    let clock = ManualClock(now: base)
    let engine = RuleEngine(clock: clock, stateStore: InMemoryRuleStateStore(), logger: Logger(label: "bench"))
    let tenant: TenantID = "bench"
    let reducers: [Reducer] = [.mean, .max, .delta, .last]
    for i in 0..<ruleCount {
        let params = (0..<4).map { j in
            JointRule.Parameter(
                name: "p\(j)", device: "device-\(i)", signal: "s\(j)", window: .count(10),
                reducer: reducers[j])
        }
        try await engine.add(
            .joint(
                JointRule(id: "j\(i)", parameters: params, evaluationIntervalMillis: 60_000) { p in
                    (p["p0"]! ?? 0) > 50 && (p["p1"]! ?? 0) > 70 && (p["p2"]! ?? 0) >= 0 && (p["p3"]! ?? 0) != 13
                }),
            tenant: tenant)
    }
    var latencies: [Double] = []
    latencies.reserveCapacity(calls)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for n in 0..<calls {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let i = Int(state >> 33) % ruleCount
        let j = Int(state >> 20) % 4
        let v = Double(Int(state >> 40) % 100)
        let batch = PointBatch(
            tenant: tenant,
            points: [
                Point(device: "device-\(i)", signal: "s\(j)", time: base + Int64(n), value: .number(v))
            ], journalSequence: 0)
        let t = monotonicSeconds()
        await engine.pointsCommitted(batch)
        latencies.append(monotonicSeconds() - t)
        if n % 1000 == 0 { clock.advance(byMillis: 100) }
    }
    latencies.sort()
    clock.advance(byMillis: 60_000)
    let tickStart = monotonicSeconds()
    await engine.runDueTimers()
    let tick = monotonicSeconds() - tickStart
    print(
        "rules joint: \(grouped(Double(ruleCount))) rules × 4 = \(grouped(Double(ruleCount * 4))) parameters live; "
            + "per-sample evaluation p50 \(format2(percentile(latencies, 0.5) * 1e6)) µs, "
            + "p99 \(format2(percentile(latencies, 0.99) * 1e6)) µs, max \(format2((latencies.last ?? 0) * 1e6)) µs; "
            + "one timer tick over all rules \(format2(tick * 1e3)) ms")
}

private func format2(_ v: Double) -> String {
    let scaled = (v * 100).rounded() / 100
    return "\(scaled)"
}
