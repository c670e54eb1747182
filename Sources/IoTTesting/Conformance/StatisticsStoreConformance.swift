public import IoTCore

/// The conformance suite of ``StatisticsStore``: every line of its contract as a check.
///
/// ```swift
/// @Test(arguments: StatisticsStoreConformance.checks)
/// func statistics(_ check: ConformanceCheck<any StatisticsStore>) async throws {
///     try await check.run(InMemoryStatisticsStore())
/// }
/// ```
public enum StatisticsStoreConformance {
    static let acme = AccessScope.tenant("acme")
    static let globex = AccessScope.tenant("globex")

    static func result(_ job: String, _ fire: Int64, _ values: [String: SignalValue] = [:]) -> StatisticsResult {
        StatisticsResult(jobID: job, fireTime: fire, windowStart: fire - 3_600_000, windowEnd: fire, values: values)
    }

    /// The checks.
    public static let checks: [ConformanceCheck<any StatisticsStore>] = [
        ConformanceCheck("results round-trip every field and value type") { store in
            let full = StatisticsResult(
                jobID: "daily-kwh", fireTime: 1_700_006_400_000, windowStart: 1_699_920_000_000,
                windowEnd: 1_700_006_400_000,
                values: [
                    "total": .number(412.5), "tiny": .number(0.1), "huge": .number(-1.7976931348623157e308),
                    "int": .number(3), "label": .text("peak at 14:00 — ok"), "empty": .text(""),
                    "alarm": .bool(true), "quiet": .bool(false),
                ])
            let bare = result("daily-kwh", 1_700_010_000_000)
            try await store.save(acme, full)
            try await store.save(acme, bare)
            try conformEqual(
                try await store.results(acme, jobID: "daily-kwh", from: 0, to: .max), [full, bare], "stored results")
        },
        ConformanceCheck("save replaces by (job, fire time): re-running a fire is safe") { store in
            try await store.save(acme, result("j", 1000, ["v": .number(1)]))
            var again = result("j", 1000, ["v": .number(2), "w": .text("x")])
            again.windowStart = 10
            try await store.save(acme, again)
            try await store.save(acme, result("other", 1000, ["v": .number(3)]))
            try conformEqual(try await store.results(acme, jobID: "j", from: 0, to: 2000), [again], "replaced result")
            try conformEqual(
                try await store.results(acme, jobID: "other", from: 0, to: 2000).map(\.values), [["v": .number(3)]],
                "another job at the same fire time")
        },
        ConformanceCheck("results returns from <= fireTime < to of one job, oldest first") { store in
            for fire: Int64 in [3000, 1000, 4000, 2000] { try await store.save(acme, result("j", fire)) }
            try await store.save(acme, result("k", 2500))
            func fires(_ from: Int64, _ to: Int64) async throws -> [Int64] {
                try await store.results(acme, jobID: "j", from: from, to: to).map(\.fireTime)
            }
            try conformEqual(try await fires(0, 10_000), [1000, 2000, 3000, 4000], "all, oldest first")
            try conformEqual(try await fires(2000, 4000), [2000, 3000], "from inclusive, to exclusive")
            try conformEqual(try await fires(2001, 2999), [], "empty range")
            try conformEqual(try await fires(3000, 3000), [], "from == to")
            try conformEqual(try await store.results(acme, jobID: "none", from: 0, to: 10_000), [], "unknown job")
        },
        ConformanceCheck("lastFireTime is the latest stored fire of the job, or nil") { store in
            try conformEqual(try await store.lastFireTime(acme, jobID: "j"), nil, "no results yet")
            try await store.save(acme, result("j", 5000))
            try await store.save(acme, result("j", 2000))
            try await store.save(acme, result("k", 9000))
            try conformEqual(try await store.lastFireTime(acme, jobID: "j"), 5000, "latest, not last saved")
            try conformEqual(try await store.lastFireTime(acme, jobID: "k"), 9000, "another job")
            try conformEqual(try await store.lastFireTime(acme, jobID: "none"), nil, "unknown job")
        },
        ConformanceCheck("tenants are isolated") { store in
            try await store.save(acme, result("j", 1000, ["v": .number(1)]))
            try conformEqual(
                try await store.results(globex, jobID: "j", from: 0, to: 9999), [], "other tenant's results")
            try conformEqual(try await store.lastFireTime(globex, jobID: "j"), nil, "other tenant's last fire")
            try await store.save(globex, result("j", 1000, ["v": .number(2)]))
            try conformEqual(
                try await store.results(acme, jobID: "j", from: 0, to: 9999).map(\.values), [["v": .number(1)]],
                "acme's result kept")
        },
    ]
}
