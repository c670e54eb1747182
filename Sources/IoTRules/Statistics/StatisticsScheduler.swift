public import IoTCore
public import Logging
import Metrics
public import ServiceLifecycle

/// Runs ``StatisticsJob``s: one ``ServiceLifecycle/Service`` that sleeps on the injected
/// ``IoTCore/IoTClock`` until the next fire of any job, computes it from the ``IoTCore/PointStore``
/// and saves the result in the ``IoTCore/StatisticsStore``.
///
/// ```swift
/// let scheduler = StatisticsScheduler(clock: SystemClock(), pointStore: points, statisticsStore: stats,
///                                     logger: logger)
/// try await scheduler.add(daily, tenant: "acme")     // at run time, no restart
/// serviceGroup = ServiceGroup(services: [scheduler, ...], logger: logger)
/// ```
///
/// Jobs are added, replaced and removed at run time. When a job is added, fires missed since its
/// latest stored result are handled by its ``CatchUpPolicy``. A fire whose calculation fails (a script
/// error) stores nothing and is logged and counted; the schedule goes on.
public actor StatisticsScheduler: Service, FireScheduler {
    final class Entry {
        let tenant: TenantID
        let job: StatisticsJob
        let script: (any CompiledScript)?
        var nextFire: Int64?
        var backlog: [Int64] = []
        /// Fires another instance claimed, looked at again later: run here if their claim lapsed unstored.
        var rechecks: [Recheck] = []
        var removed = false

        init(tenant: TenantID, job: StatisticsJob, script: (any CompiledScript)?) {
            self.tenant = tenant
            self.job = job
            self.script = script
        }

        var due: Int64? { [backlog.first ?? nextFire, rechecks.map(\.at).min()].compactMap { $0 }.min() }
    }

    /// A fire claimed elsewhere, to claim once more at `at` (the claimer may die before storing it); after that
    /// it is left to its claimer.
    struct Recheck {
        var fire: Int64
        var at: Int64
    }

    struct Key: Hashable {
        var tenant: TenantID
        var id: String
    }

    let clock: any IoTClock
    let pointStore: any PointStore
    let statisticsStore: any StatisticsStore
    let scriptEngines: [String: any ScriptEngine]
    let logger: Logger
    var entries: [Key: Entry] = [:]
    var sleeper: Task<Void, any Error>?

    /// Fires computed and stored.
    public internal(set) var completedFireCount = 0
    /// Fires that failed (calculation or store error).
    public internal(set) var failedFireCount = 0
    let firesCounter = Counter(label: "iot_statistics_fires_total")
    let failuresCounter = Counter(label: "iot_statistics_failures_total")
    /// Scheduled fires another instance claimed (several instances on one store): this one skipped them.
    let claimedElsewhereCounter = Counter(label: "iot_statistics_fires_claimed_elsewhere_total")
    /// Fires claimed elsewhere whose claim lapsed with nothing stored (the claimer died): this one ran them.
    let takenOverCounter = Counter(label: "iot_statistics_fires_taken_over_total")
    /// How long after a fire was claimed elsewhere this scheduler claims it again (see ``init``).
    let claimRecheck: Duration

    /// Creates a scheduler.
    ///
    /// - Parameter claimRecheck: with several instances on one store, a fire another instance claimed is claimed
    ///   again this long after (up to three times); a store lets the claim be taken over once its lease lapsed
    ///   with no result stored, so the fire of an instance that died after claiming it still runs. Keep it longer
    ///   than the store's lease (PostgreSQL: 60 s). Default 75 s.
    public init(
        clock: any IoTClock, pointStore: any PointStore, statisticsStore: any StatisticsStore,
        scriptEngines: [any ScriptEngine] = [], claimRecheck: Duration = .seconds(75), logger: Logger
    ) {
        self.claimRecheck = claimRecheck
        self.clock = clock
        self.pointStore = pointStore
        self.statisticsStore = statisticsStore
        self.scriptEngines = Dictionary(scriptEngines.map { ($0.language, $0) }, uniquingKeysWith: { a, _ in a })
        self.logger = logger
    }

    /// Adds a job, or replaces the job with the same id; missed fires are queued per its catch-up policy.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a number outside its range
    ///   (``StatisticsJob/validate()``), ``IoTCore/IoTError/Code/script`` for a calculation that does not compile.
    public func add(_ job: StatisticsJob, tenant: TenantID) async throws {
        try job.validate()
        var script: (any CompiledScript)?
        if case .script(let language, let source, _) = job.calculation {
            guard let engine = scriptEngines[language] else {
                throw IoTError(
                    .script,
                    "job '\(job.id)' needs a '\(language)' script engine; pass one in StatisticsScheduler(scriptEngines:)"
                )
            }
            script = try engine.compile(source, name: "statistics:\(job.id)")
        }
        let last = try await statisticsStore.lastFireTime(.tenant(tenant), jobID: job.id)
        let now = clock.now()
        let entry = Entry(tenant: tenant, job: job, script: script)
        if let last {
            switch job.catchUp {
            case .none: break
            case .latest:
                if let l = job.cron.fires(after: last, through: now, in: job.timeZone, limit: 100_000).last {
                    entry.backlog = [l]
                }
            case .all(let n):
                entry.backlog = Array(
                    job.cron.fires(after: last, through: now, in: job.timeZone, limit: 100_000).suffix(max(0, n)))
            }
        }
        entry.nextFire = job.cron.next(after: now, in: job.timeZone)
        entries[Key(tenant: tenant, id: job.id)]?.removed = true
        entries[Key(tenant: tenant, id: job.id)] = entry
        sleeper?.cancel()
    }

    /// Removes a job (its stored results stay); `false` when there was none.
    @discardableResult
    public func remove(jobID: String, tenant: TenantID) -> Bool {
        guard let e = entries.removeValue(forKey: Key(tenant: tenant, id: jobID)) else { return false }
        e.removed = true
        sleeper?.cancel()
        return true
    }

    /// The jobs of a tenant, sorted by id.
    public func jobs(tenant: TenantID) -> [StatisticsJob] {
        entries.values.filter { $0.tenant == tenant }.map(\.job).sorted { $0.id < $1.id }
    }

    /// The earliest pending fire (a missed fire to catch up counts as due now), or `nil`.
    public var nextFireTime: Int64? { entries.values.compactMap(\.due).min() }

    /// Runs every fire due at the clock's current time, oldest first. ``run()`` calls it; a test calls
    /// it after advancing a manual clock.
    public func runDue() async {
        while true {
            let now = clock.now()
            guard let e = entries.values.filter({ ($0.due ?? .max) <= now }).min(by: { $0.due! < $1.due! }) else {
                return
            }
            let fire: Int64
            var recheck: Recheck?
            if !e.backlog.isEmpty {
                fire = e.backlog.removeFirst()
            } else if let next = e.nextFire, next <= now {
                fire = next
                e.nextFire = e.job.cron.next(after: fire, in: e.job.timeZone)
            } else {
                let i = e.rechecks.indices.min { e.rechecks[$0].at < e.rechecks[$1].at }!
                recheck = e.rechecks.remove(at: i)
                fire = recheck!.fire
            }
            do {
                // Several instances on one store each schedule the job; the one that claims the fire runs it.
                guard
                    try await statisticsStore.claimFire(.tenant(e.tenant), jobID: e.job.id, fireTime: fire)
                else {
                    if recheck == nil {
                        claimedElsewhereCounter.increment()
                        e.rechecks.append(Recheck(fire: fire, at: now + claimRecheck.inMilliseconds))
                    }
                    continue
                }
                if recheck != nil {
                    takenOverCounter.increment()
                    logger.info(
                        "statistics fire taken over: its claim lapsed with nothing stored",
                        metadata: ["tenant": "\(e.tenant)", "job": "\(e.job.id)", "fire": "\(fire)"])
                }
                _ = try await execute(e.job, script: e.script, tenant: e.tenant, fireTime: fire)
            } catch {
                failedFireCount += 1
                failuresCounter.increment()
                logger.warning(
                    "statistics fire failed; nothing stored for it",
                    metadata: ["tenant": "\(e.tenant)", "job": "\(e.job.id)", "fire": "\(fire)", "error": "\(error)"])
            }
        }
    }

    /// Computes and stores one fire of a job now, whatever its schedule (a manual re-run).
    @discardableResult
    public func runFire(jobID: String, tenant: TenantID, fireTime: Int64) async throws -> StatisticsResult {
        guard let e = entries[Key(tenant: tenant, id: jobID)] else {
            throw IoTError(.notFound, "no statistics job '\(jobID)' in tenant \(tenant)")
        }
        return try await execute(e.job, script: e.script, tenant: tenant, fireTime: fireTime)
    }

    /// Sleeps until the next fire of any job and runs it, until cancelled or gracefully shut down.
    public func run() async throws { try await runFireLoop() }

    private func execute(_ job: StatisticsJob, script: (any CompiledScript)?, tenant: TenantID, fireTime: Int64)
        async throws -> StatisticsResult
    {
        let scope = AccessScope.tenant(tenant)
        let from = fireTime.saturatingSubtract(job.leadMillis)
        var values: [String: Double?] = [:]
        var raw: [String: [Double]] = [:]
        for p in job.parameters {
            let series = SeriesKey(device: p.device, signal: p.signal)
            if p.reducer == .raw {
                let points = try await pointStore.range(
                    scope, series: series, from: from, to: fireTime, limit: nil, order: .ascending)
                let numbers = points.compactMap(\.value.numericValue)
                raw[p.name] = numbers
                values[p.name] = .some(numbers.last)
                continue
            }
            let bucket = try await pointStore.aggregate(
                scope, series: series, from: from, to: fireTime, bucketMillis: nil
            ).first
            let v: Double? =
                switch p.reducer {
                case .count: Double(bucket?.count ?? 0)
                case .sum: bucket?.sum
                case .min: bucket?.min
                case .max: bucket?.max
                case .mean: bucket?.mean
                case .first: bucket?.first?.numericValue
                case .last, .raw: bucket?.last?.numericValue
                case .delta:
                    bucket.flatMap { b in
                        b.last?.numericValue.flatMap { l in b.first?.numericValue.map { l - $0 } }
                    }
                }
            values[p.name] = .some(v)
        }

        var output: [String: SignalValue] = [:]
        switch job.calculation {
        case nil:
            for case (let k, let v?) in values { output[k] = .number(v) }
        case .closure(let f):
            output = f(values)
        case .script(_, _, let function):
            guard let script else { throw IoTError(.script, "job '\(job.id)' has no compiled script") }
            var object: [String: ScriptValue] = [:]
            for (k, v) in values {
                if let list = raw[k] {
                    object[k] = .array(list.map(ScriptValue.number))
                } else {
                    object[k] = v.map(ScriptValue.number) ?? .null
                }
            }
            let result = try await script.call(function, [.object(object)])
            guard case .object(let fields) = result else {
                throw IoTError(
                    .script, "job '\(job.id)': \(function) returned \(result), not an object of named values")
            }
            for (k, v) in fields {
                switch v {
                case .number(let n): output[k] = .number(n)
                case .string(let s): output[k] = .text(s)
                case .bool(let b): output[k] = .bool(b)
                default: continue
                }
            }
        }
        let result = StatisticsResult(
            jobID: job.id, fireTime: fireTime, windowStart: from, windowEnd: fireTime, values: output)
        try await statisticsStore.save(scope, result)
        completedFireCount += 1
        firesCounter.increment()
        return result
    }
}
