import ArgumentParser
import IoTCore
import IoTPlatform
import IoTStorage

/// `iotd backup` and `iotd restore`: full backups of the data directory while iotd runs (``DataBackup``).
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back up the data directory while iotd runs, or check a backup set.",
        subcommands: [Create.self, Verify.self], defaultSubcommand: Create.self)

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract:
                "Copy the journal, every database (a consistent snapshot) and the other files of dataDirectory into a new directory, with a manifest."
        )

        @Option(name: .shortAndLong, help: "The YAML configuration; its dataDirectory is backed up.")
        var config: String

        @Option(help: "The backup set's directory: new or empty.")
        var to: String

        func run() throws {
            let (configuration, _) = try loadConfiguration(config)
            let manifest = try DataBackup.create(
                dataDirectory: configuration.dataDirectory, to: to, version: IoTPlatform.version)
            let bytes = manifest.files.reduce(0) { $0 + $1.bytes }
            print(
                "backup set written to \(to): \(manifest.files.count) files, \(bytes) bytes, journal sequence \(manifest.journalSequence)"
            )
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a backup set: every file's size and SHA-256, SQLite's integrity check, the points.")

        @Argument(help: "The backup set's directory.")
        var directory: String

        func run() throws {
            let checked = try DataBackup.verify(directory)
            let points = checked.points.sorted { $0.key.rawValue < $1.key.rawValue }
                .map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            print(
                "backup set OK: \(checked.manifest.files.count) files, \(checked.bytes) bytes, journal sequence \(checked.manifest.journalSequence), written by \(checked.manifest.version); points: \(points.isEmpty ? "none" : points)"
            )
        }
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Restore a backup set into a data directory (checked first; iotd replays the journal when it starts on it)."
    )

    @Option(help: "The backup set's directory.")
    var from: String

    @Option(help: "The data directory to restore into: new or empty, unless --force.")
    var to: String

    @Flag(help: "Replace the contents of a data directory that is not empty.")
    var force = false

    func run() throws {
        let checked = try DataBackup.restore(from: from, to: to, force: force)
        print(
            "restored \(checked.manifest.files.count) files into \(to) (journal sequence \(checked.manifest.journalSequence)); start iotd with dataDirectory: \(to)"
        )
    }
}
