import Foundation
public import IoTCore
public import Logging
import Metrics
public import ServiceLifecycle

/// Runs ``ReportDefinition``s: one ``ServiceLifecycle/Service`` that sleeps on the injected
/// ``IoTCore/IoTClock`` until the next fire of any report, makes it with a ``ReportBuilder``, keeps the run in a
/// ``IoTCore/DefinitionStore`` (kind `report-run.<id>`, the newest ``ReportDefinition/keepRuns``) and enqueues
/// one message per recipient in the tenant's ``IoTCore/Outbox``: the HTML document with the CSV files attached.
///
/// ```swift
/// let reports = ReportScheduler(
///     clock: SystemClock(), builder: ReportBuilder(points: points, registry: registry, alarms: ruleState),
///     runs: definitions, outbox: outbox, enqueued: { tenant in Task { await dispatcher.wake(tenant) } },
///     logger: logger)
/// try await reports.add(daily, tenant: "acme")
/// ```
///
/// A fire missed while the scheduler was not running is not made up; a run is made once per fire time (its
/// outbox messages have ids of the report and fire time, so a second attempt enqueues nothing twice). A run that
/// fails is logged and counted (`iot_reports_total{result="failed"}`), and the schedule goes on.
public actor ReportScheduler: Service, FireScheduler {
    private struct Key: Hashable {
        var tenant: TenantID
        var id: String
    }

    private struct Entry {
        var definition: ReportDefinition
        var nextFire: Int64?
    }

    let clock: any IoTClock
    let builder: ReportBuilder
    let runs: any DefinitionStore
    let outbox: any Outbox
    let enqueued: @Sendable (TenantID) -> Void
    let logger: Logger
    private var entries: [Key: Entry] = [:]
    var sleeper: Task<Void, any Error>?

    /// Creates the scheduler; nothing runs until ``run()``.
    ///
    /// - Parameters:
    ///   - runs: where runs are kept for download.
    ///   - outbox: where a run's messages are enqueued.
    ///   - enqueued: told after messages were enqueued for a tenant (wake the dispatcher).
    public init(
        clock: any IoTClock, builder: ReportBuilder, runs: any DefinitionStore, outbox: any Outbox,
        enqueued: @escaping @Sendable (TenantID) -> Void = { _ in }, logger: Logger
    ) {
        self.clock = clock
        self.builder = builder
        self.runs = runs
        self.outbox = outbox
        self.enqueued = enqueued
        self.logger = logger
    }

    /// Adds or replaces a report of `tenant`; its next fire is the first after now.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` when the definition is not valid.
    public func add(_ definition: ReportDefinition, tenant: TenantID) throws(IoTError) {
        try definition.validate()
        entries[Key(tenant: tenant, id: definition.id)] = Entry(
            definition: definition, nextFire: definition.cron.next(after: clock.now(), in: definition.timeZone))
        sleeper?.cancel()
    }

    /// Removes a report (its kept runs stay); `false` when there was none.
    @discardableResult
    public func remove(id: String, tenant: TenantID) -> Bool {
        guard entries.removeValue(forKey: Key(tenant: tenant, id: id)) != nil else { return false }
        sleeper?.cancel()
        return true
    }

    /// The reports of a tenant, sorted by id.
    public func definitions(tenant: TenantID) -> [ReportDefinition] {
        entries.filter { $0.key.tenant == tenant }.map(\.value.definition).sorted { $0.id < $1.id }
    }

    /// One report of a tenant, or `nil`.
    public func definition(id: String, tenant: TenantID) -> ReportDefinition? {
        entries[Key(tenant: tenant, id: id)]?.definition
    }

    /// When a report runs next, or `nil` when its cron never fires again.
    public func nextFire(id: String, tenant: TenantID) -> Int64? { entries[Key(tenant: tenant, id: id)]?.nextFire }

    /// The earliest next fire of any report.
    public var nextFireTime: Int64? { entries.values.compactMap(\.nextFire).min() }

    /// Makes the report `id` of `tenant` over `[from, to)` now, keeps it and, when `deliver`, enqueues it for its
    /// recipients.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound`` for an unknown report; the stores' errors.
    public func run(id: String, tenant: TenantID, from: Int64, to: Int64, deliver: Bool) async throws -> Report {
        guard let definition = entries[Key(tenant: tenant, id: id)]?.definition else {
            throw IoTError(.notFound, "no report '\(id)' in tenant \(tenant)")
        }
        return try await make(definition, tenant: tenant, from: from, to: to, deliver: deliver)
    }

    /// The kept runs of a report, newest first.
    public func runs(id: String, tenant: TenantID) async throws -> [Report] {
        try await runs.definitions(.tenant(tenant), kind: Self.runKind(id)).reversed().map(Self.decode)
    }

    /// The kept run of a report that ended at `to`, or `nil`.
    public func report(id: String, tenant: TenantID, to: Int64) async throws -> Report? {
        let stored = try await runs.definitions(.tenant(tenant), kind: Self.runKind(id))
        return try stored.first { $0.id == Self.runID(to) }.map(Self.decode)
    }

    /// Forgets a deleted tenant's reports.
    public func removeTenant(_ tenant: TenantID) {
        entries = entries.filter { $0.key.tenant != tenant }
        sleeper?.cancel()
    }

    /// Runs every report due at the clock's current time. ``run()`` calls it; a test calls it after advancing a
    /// manual clock.
    public func runDue() async {
        let now = clock.now()
        for (key, entry) in entries.sorted(by: { ($0.value.nextFire ?? .max) < ($1.value.nextFire ?? .max) }) {
            guard let fire = entry.nextFire, fire <= now else { continue }
            entries[key]?.nextFire = entry.definition.cron.next(after: fire, in: entry.definition.timeZone)
            do {
                _ = try await make(
                    entry.definition, tenant: key.tenant, from: fire.saturatingSubtract(entry.definition.periodMillis),
                    to: fire, deliver: true)
            } catch {
                logger.error(
                    "a report failed; the next fire is tried as scheduled",
                    metadata: ["tenant": "\(key.tenant)", "report": "\(key.id)", "error": "\(error)"])
            }
        }
    }

    /// Sleeps until the next fire of any report and runs it, until cancelled or gracefully shut down.
    public func run() async throws { try await runFireLoop() }

    private func make(
        _ definition: ReportDefinition, tenant: TenantID, from: Int64, to: Int64, deliver: Bool
    ) async throws -> Report {
        let scope = AccessScope.tenant(tenant)
        let report: Report
        do {
            report = try await builder.build(definition, tenant: tenant, from: from, to: to, now: clock.now())
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let kind = Self.runKind(definition.id)
            try await runs.saveDefinition(
                scope, kind: kind, id: Self.runID(to), body: Array(try encoder.encode(report)))
            let kept = try await runs.definitions(scope, kind: kind)
            for old in kept.dropLast(definition.keepRuns) {
                _ = try await runs.deleteDefinition(scope, kind: kind, id: old.id)
            }
        } catch {
            Counter(label: "iot_reports_total", dimensions: [("result", "failed")]).increment()
            throw error
        }
        Counter(label: "iot_reports_total", dimensions: [("result", "made")]).increment()
        guard deliver, !definition.recipients.isEmpty else { return report }
        for (i, recipient) in definition.recipients.enumerated() {
            let message = OutboxMessage(
                id: "report-\(definition.id)-\(to)-\(i)", channel: recipient.channel, recipient: recipient.to,
                subject: "\(definition.title) · \(ReportBuilder.timestamp(from)) to \(ReportBuilder.timestamp(to)) UTC",
                body: report.html, createdAt: clock.now(), format: .html, attachments: report.attachments)
            do {
                try await outbox.enqueue(scope, message)
            } catch let error as IoTError where error.code == .conflict {
                continue  // this fire's message is already queued
            }
        }
        enqueued(tenant)
        return report
    }

    /// Runs of report `id` are kept under this kind.
    static func runKind(_ id: String) -> String { "report-run." + id }

    /// The fire time, zero-padded so that the store's order by id is the order of time.
    static func runID(_ to: Int64) -> String {
        let digits = String(max(0, to))
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }

    private static func decode(_ stored: StoredDefinition) throws -> Report {
        try JSONDecoder().decode(Report.self, from: Data(stored.body))
    }
}
