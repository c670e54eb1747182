public import IoTCore
public import Logging
import Metrics
public import ServiceLifecycle

/// Scheduled and continuous backups of a running platform's data directory into a backup repository
/// (``DataBackup``): full sets and incremental sets on a schedule, the journal shipped every few seconds
/// (``JournalShipper``), and the retention of old sets. Put it first in the service group, so at a graceful
/// shutdown it stops last, shipping what the ingestor drained.
///
/// ```yaml
/// backup:
///   to: /backup/iotd                 # the repository
///   keyFile: /etc/iotd/backup.key    # seal sets and shipments with AES-256-GCM (32 bytes; optional)
///   fullEveryHours: 24               # a full set; the first at start when the repository has none
///   incrementalEveryMinutes: 60      # the pages changed since the last set
///   continuous: { everySeconds: 10 } # ship the journal: the recovery point stays within seconds
///   keepFull: 7                      # full sets kept, with what builds on them
/// ```
///
/// Metrics: `iot_backup_sets_total{kind}`, `iot_backup_failures_total{kind}` (`full`, `incremental`,
/// `shipment`), `iot_backup_shipped_records_total`, `iot_backup_last_success_timestamp_seconds{kind}`.
public final class BackupService: Service, Sendable {
    /// `backup:` of iotd.yaml.
    public struct Configuration: Sendable, Hashable, Decodable {
        /// The repository the sets and shipments go to; required.
        public var to: String?
        /// A file with the ``BackupKey``: sets and shipments are sealed when given.
        public var keyFile: String?
        /// Hours between full sets; `nil`: only the first one, when the repository has none.
        public var fullEveryHours: Double?
        /// Minutes between incremental sets; `nil`: none on a schedule.
        public var incrementalEveryMinutes: Double?
        /// Seconds between journal shipments; `nil`: no continuous backup.
        public var continuousEverySeconds: Double?
        /// Full sets kept (with the incremental sets and shipments that build on them); `nil`: all.
        public var keepFull: Int?

        /// Creates a configuration.
        public init(
            to: String? = nil, keyFile: String? = nil, fullEveryHours: Double? = nil,
            incrementalEveryMinutes: Double? = nil, continuousEverySeconds: Double? = nil, keepFull: Int? = nil
        ) {
            self.to = to
            self.keyFile = keyFile
            self.fullEveryHours = fullEveryHours
            self.incrementalEveryMinutes = incrementalEveryMinutes
            self.continuousEverySeconds = continuousEverySeconds
            self.keepFull = keepFull
        }

        private enum CodingKeys: String, CodingKey {
            case to, keyFile, fullEveryHours, incrementalEveryMinutes, continuous, keepFull
        }

        private struct Continuous: Decodable {
            var to: String?
            var everySeconds: Double
        }

        /// Reads `backup:`; `continuous: {to: DIR, everySeconds: 10}` may name the repository instead of `to`.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let continuous = try c.decodeIfPresent(Continuous.self, forKey: .continuous)
            self.init(
                to: try c.decodeIfPresent(String.self, forKey: .to) ?? continuous?.to,
                keyFile: try c.decodeIfPresent(String.self, forKey: .keyFile),
                fullEveryHours: try c.decodeIfPresent(Double.self, forKey: .fullEveryHours),
                incrementalEveryMinutes: try c.decodeIfPresent(Double.self, forKey: .incrementalEveryMinutes),
                continuousEverySeconds: continuous?.everySeconds,
                keepFull: try c.decodeIfPresent(Int.self, forKey: .keepFull))
        }

        /// Checks the values.
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            guard let to, !to.isEmpty else {
                throw IoTError(.invalidArgument, "to is missing: name the repository, e.g. /backup/iotd")
            }
            if let v = fullEveryHours, !(v > 0) {
                throw IoTError(.invalidArgument, "fullEveryHours is \(v); use more than 0, e.g. 24")
            }
            if let v = incrementalEveryMinutes, !(v > 0) {
                throw IoTError(.invalidArgument, "incrementalEveryMinutes is \(v); use more than 0, e.g. 60")
            }
            if let v = continuousEverySeconds, !(v >= 0.1 && v <= 86_400) {
                throw IoTError(
                    .invalidArgument, "continuous.everySeconds is \(v); use 0.1 to 86400, e.g. 10")
            }
            if let v = keepFull, v < 1 {
                throw IoTError(.invalidArgument, "keepFull is \(v); keep at least 1 full set")
            }
        }
    }

    private let configuration: Configuration
    private let repository: String
    private let dataDirectory: String
    private let key: BackupKey?
    private let version: String
    private let shipper: JournalShipper?
    private let logger: Logger

    /// Creates the service; with continuous backup the journal keeps, from now on, what is not shipped yet.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a bad configuration or key file.
    public init(
        configuration: Configuration, dataDirectory: String, journal: FileJournal, version: String,
        logger: Logger = Logger(label: "iot.backup")
    ) throws(IoTError) {
        try configuration.validate()
        self.configuration = configuration
        repository = configuration.to ?? ""
        self.dataDirectory = dataDirectory
        key = try configuration.keyFile.map { path throws(IoTError) in try BackupKey(file: path) }
        self.version = version
        shipper =
            configuration.continuousEverySeconds == nil
            ? nil : try JournalShipper(journal: journal, repository: repository, key: key)
        self.logger = logger
    }

    /// Takes a set now (off the cooperative pool), then prunes the repository; logs and counts a failure.
    @discardableResult
    public func takeSet(_ kind: DataBackup.Kind) async -> DataBackup.Manifest? {
        let (repository, dataDirectory, key, version, keep) = (
            self.repository, self.dataDirectory, self.key, self.version, configuration.keepFull
        )
        do {
            let manifest = try await offPool {
                let manifest = try DataBackup.create(
                    dataDirectory: dataDirectory, repository: repository, kind: kind, key: key, version: version)
                if let keep { try DataBackup.prune(repository: repository, keepFull: keep) }
                return manifest
            }
            Counter(label: "iot_backup_sets_total", dimensions: [("kind", manifest.kind)]).increment()
            Gauge(label: "iot_backup_last_success_timestamp_seconds", dimensions: [("kind", manifest.kind)])
                .record(Double(manifest.createdAt) / 1_000)
            logger.info(
                "backup set written",
                metadata: [
                    "set": "\(manifest.id ?? "")", "files": "\(manifest.files.count)",
                    "bytes": "\(manifest.files.reduce(0) { $0 + $1.bytes })",
                ])
            return manifest
        } catch {
            Counter(label: "iot_backup_failures_total", dimensions: [("kind", kind.rawValue)]).increment()
            logger.error("backup set failed", metadata: ["kind": "\(kind.rawValue)", "error": "\(error)"])
            return nil
        }
    }

    /// Ships the journal's new records now (continuous backup only); logs and counts a failure.
    @discardableResult
    public func ship() async -> JournalShipper.Shipment? {
        guard let shipper else { return nil }
        do {
            let shipment = try await offPool { try shipper.ship() }
            if let shipment {
                Counter(label: "iot_backup_shipped_records_total").increment(by: shipment.records)
                Gauge(label: "iot_backup_last_success_timestamp_seconds", dimensions: [("kind", "shipment")])
                    .record(Double(shipment.at) / 1_000)
            }
            return shipment
        } catch {
            Counter(label: "iot_backup_failures_total", dimensions: [("kind", "shipment")]).increment()
            logger.error("journal shipment failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Takes the first full set when the repository has none, then ships the journal and takes sets on their
    /// schedules until shutdown; ships once more when it stops.
    public func run() async throws {
        var existing = (try? DataBackup.sets(in: repository)) ?? []
        if !existing.contains(where: { $0.kind == DataBackup.Kind.full.rawValue }), let first = await takeSet(.full) {
            existing.append(first)
        }
        // A schedule goes on from the repository's last set of its kind, across restarts.
        let now = SystemClock().now()
        let lastFull = existing.last { $0.kind == DataBackup.Kind.full.rawValue }?.createdAt ?? now
        let lastSet = existing.last?.createdAt ?? now
        await withDiscardingTaskGroup { group in
            if let seconds = configuration.continuousEverySeconds {
                group.addTask { await self.every(seconds: seconds, first: seconds) { await self.ship() } }
            }
            if let minutes = configuration.incrementalEveryMinutes {
                let first = Double(lastSet - now) / 1_000 + minutes * 60
                group.addTask {
                    await self.every(seconds: minutes * 60, first: first) { await self.takeSet(.incremental) }
                }
            }
            if let hours = configuration.fullEveryHours {
                let first = Double(lastFull - now) / 1_000 + hours * 3_600
                group.addTask { await self.every(seconds: hours * 3_600, first: first) { await self.takeSet(.full) } }
            }
        }
        await ship()
    }

    /// Runs `body` after `first` seconds (none when negative), then every `seconds`, until graceful shutdown or
    /// cancellation.
    private func every(seconds: Double, first: Double, _ body: @Sendable () async -> Void) async {
        var wait = max(0, first)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let millis = Int64(wait * 1_000)
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(millis)) }
            } catch {
                return
            }
            await body()
            wait = seconds
        }
    }
}
