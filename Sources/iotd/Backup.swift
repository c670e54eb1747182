import ArgumentParser
import Foundation
import IoTCore
import IoTPlatform
import IoTStorage

/// `iotd backup` and `iotd restore`: backups of the data directory into a repository while iotd runs
/// (``DataBackup``), their verification, and their restore to the latest state or a point in time.
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back up the data directory while iotd runs, check a backup, or list a repository.",
        subcommands: [Create.self, Verify.self, List.self], defaultSubcommand: Create.self)

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract:
                "Write a new set into a backup repository: every database (a consistent snapshot, or with --incremental the pages changed since the last set), the journal and the other files of dataDirectory, with a manifest."
        )

        @Option(name: .shortAndLong, help: "The YAML configuration; its dataDirectory is backed up.")
        var config: String

        @Option(help: "The backup repository (created if missing); default: backup.to of the configuration.")
        var to: String?

        @Flag(help: "Only what changed since the repository's last set (a full set when it has none).")
        var incremental = false

        @Option(help: "Seal the set with AES-256-GCM using this 32-byte key; default: backup.keyFile.")
        var keyFile: String?

        func run() throws {
            let (configuration, _) = try loadConfiguration(config)
            if configuration.storage.postgres != nil {
                throw ValidationError(
                    "\(config) keeps its stores in PostgreSQL (storage.postgres): back the database up with pg_dump or base backups with WAL archiving; iotd backup copies SQLite files"
                )
            }
            guard let repository = to ?? configuration.backup?.to else {
                throw ValidationError("give --to DIR, or backup.to in \(config)")
            }
            let key = try (keyFile ?? configuration.backup?.keyFile).map { try BackupKey(file: $0) }
            let manifest = try DataBackup.create(
                dataDirectory: configuration.dataDirectory, repository: repository,
                kind: incremental ? .incremental : .full, key: key, version: IoTPlatform.version)
            let bytes = manifest.files.reduce(0) { $0 + $1.bytes }
            let pages = (manifest.databases ?? []).reduce(0) { $0 + $1.pagesStored }
            print(
                "backup set \(manifest.id ?? "") written to \(repository): \(manifest.kind), \(manifest.files.count) files, \(bytes) bytes, \(pages) database pages, journal sequence \(manifest.journalSequence)\(key == nil ? "" : ", sealed")"
            )
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Check a set and the sets it builds on: every file's size and SHA-256, the sealed chunks, SQLite's integrity check on the rebuilt databases, the points."
        )

        @Argument(help: "A backup repository (its newest set) or one set.")
        var directory: String

        @Option(help: "The key the sets were sealed with.")
        var keyFile: String?

        func run() throws {
            let key = try keyFile.map { try BackupKey(file: $0) }
            let checked = try DataBackup.verify(directory, key: key)
            let points = checked.points.sorted { $0.key.rawValue < $1.key.rawValue }
                .map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            print(
                "backup set OK: \(checked.manifest.id ?? directory) (\(checked.chain.count) set\(checked.chain.count == 1 ? "" : "s") in its chain), \(checked.bytes) bytes, journal sequence \(checked.manifest.journalSequence), written by \(checked.manifest.version); points: \(points.isEmpty ? "none" : points)"
            )
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the sets and the shipped journal of a backup repository.")

        @Argument(help: "The backup repository.")
        var directory: String

        func run() throws {
            for set in try DataBackup.sets(in: directory) {
                let bytes = set.files.reduce(0) { $0 + $1.bytes }
                print(
                    "\(set.id ?? "?")  \(set.kind)  \(bytes) bytes  journal \(set.journalSequence)\(set.parent.map { "  after \($0)" } ?? "")\(set.encryption == nil ? "" : "  sealed")"
                )
            }
            let shipped = try JournalShipper.index(of: directory)
            if let first = shipped.first, let last = shipped.last {
                print(
                    "shipped journal: \(shipped.count) shipments, records \(first.first)…\(last.last), last at \(Restore.format(last.at))"
                )
            }
        }
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Restore a backup into a data directory: the newest set (or the newest by --at) with the sets it builds on, then the shipped journal (checked first; iotd replays the journal when it starts on it)."
    )

    @Option(help: "The backup repository, or one set in it.")
    var from: String

    @Option(help: "The data directory to restore into: new or empty, unless --force.")
    var to: String

    @Option(
        help:
            "A point in time (2026-12-06T01:02:03Z, or milliseconds since 1970): the state of the last shipment begun by then."
    )
    var at: String?

    @Option(help: "The key the sets were sealed with.")
    var keyFile: String?

    @Flag(help: "Replace the contents of a data directory that is not empty.")
    var force = false

    func run() throws {
        let key = try keyFile.map { try BackupKey(file: $0) }
        let time = try at.map { text throws -> Int64 in
            if let millis = Int64(text) { return millis }
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let date = formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
            guard let date else {
                throw ValidationError("--at \(text): give a time as 2026-12-06T01:02:03Z or milliseconds since 1970")
            }
            return Int64((date.timeIntervalSince1970 * 1_000).rounded())
        }
        let restored = try DataBackup.restore(from: from, to: to, at: time, key: key, force: force)
        let set = restored.verification.manifest
        for gap in restored.gaps {
            print(
                "warning: journal records \(gap.lowerBound)…\(gap.upperBound) are in no set or shipment (shipping was not running then): the points they held are missing"
            )
        }
        print(
            "restored \(set.id ?? from) (\(restored.verification.chain.count) set\(restored.verification.chain.count == 1 ? "" : "s")) and \(restored.journalRecords) journal records to replay (\(restored.shippedRecords) shipped) through sequence \(restored.journalThrough) into \(to); start iotd with dataDirectory: \(to)"
        )
    }

    /// A time in milliseconds since 1970 as ISO 8601 in UTC.
    static func format(_ millis: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1_000))
    }
}
