import IoTCore
public import IoTListener
import IoTRules
import Logging
import Synchronization

extension IoTPlatform {
    /// What ``reload(_:)`` applied.
    public struct Reload: Sendable, Hashable {
        /// The TLS listeners that read their certificate files again, and those that keep the old one.
        public var certificates: ListenerTLS.Reload
        /// Script parsers of `parsers:` compiled and saved.
        public var parsers = 0
        /// Alarm rules of `tenants[].rules` added or replaced, and removed (in the previous file, not in this one).
        public var rules = 0
        /// See ``rules``.
        public var rulesRemoved = 0
        /// Statistics jobs of `tenants[].statistics` added or replaced, and removed.
        public var statisticsJobs = 0
        /// See ``statisticsJobs``.
        public var statisticsJobsRemoved = 0
        /// What could not be applied, each naming its place in the file; the rest was applied.
        public var failures: [String] = []
    }

    /// Applies a changed configuration file without a restart and without dropping a connection (`iotd`
    /// calls it on SIGHUP): every TLS listener reads its certificate, key and client CA files again (new
    /// connections get them), the script parsers of `parsers:` are compiled and saved, and the alarm rules
    /// and statistics jobs of `tenants:` are added or replaced, and those the previous file declared and this
    /// one does not are removed (as a restart would). A parser that does not compile or a rule that does not
    /// validate is named in ``Reload/failures`` and keeps its previous version; everything else is applied.
    ///
    /// Other sections (ports, storage, transports, tenants' products and devices) take effect at the next
    /// start.
    public func reload(_ configuration: PlatformConfiguration) async -> Reload {
        var report = Reload(certificates: ListenerTLS.reloadCertificates())
        report.failures += report.certificates.failures.map { "tls: \($0)" }
        for declared in configuration.parsers {
            do {
                try await parserCatalog.save(
                    ScriptSource(name: declared.name, language: declared.language, source: declared.source))
                report.parsers += 1
            } catch {
                report.failures.append("parsers[\(declared.name)]: \(error.message)")
            }
        }
        let previous = declaredTenants.withLock { $0 }
        for seed in configuration.tenants {
            let tenant = TenantID(seed.id)
            for rule in seed.rules ?? [] {
                do {
                    try await rules.add(rule, tenant: tenant)
                    report.rules += 1
                } catch {
                    report.failures.append("tenants[\(seed.id)].rules[\(rule.id)]: \(error)")
                }
            }
            for job in seed.statistics ?? [] {
                do {
                    try await statistics.add(job, tenant: tenant)
                    report.statisticsJobs += 1
                } catch {
                    report.failures.append("tenants[\(seed.id)].statistics[\(job.id)]: \(error)")
                }
            }
        }
        let current = Dictionary(configuration.tenants.map { ($0.id, $0) }) { first, _ in first }
        for seed in previous {
            let tenant = TenantID(seed.id)
            let keptRules = Set((current[seed.id]?.rules ?? []).map(\.id))
            for rule in seed.rules ?? [] where !keptRules.contains(rule.id) {
                do {
                    if try await rules.remove(ruleID: rule.id, tenant: tenant) { report.rulesRemoved += 1 }
                } catch {
                    report.failures.append("tenants[\(seed.id)].rules[\(rule.id)]: not removed: \(error)")
                }
            }
            let keptJobs = Set((current[seed.id]?.statistics ?? []).map(\.id))
            for job in seed.statistics ?? [] where !keptJobs.contains(job.id) {
                if await statistics.remove(jobID: job.id, tenant: tenant) { report.statisticsJobsRemoved += 1 }
            }
        }
        declaredTenants.withLock { $0 = configuration.tenants }
        return report
    }
}
