import Foundation
import IoTCore
import IoTStorage
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 22, items 1 and 3, on the library: a full backup of a data directory (databases, journal, other files)
/// with its manifest; verification that catches a corrupt, truncated or unfinished set; a restore that writes
/// nothing from such a set, refuses a non-empty target without `force`, and gives back the committed points and
/// the journal's records past them. The backup's blocking file work runs on a thread of its own, as iotd runs it
/// (never on the cooperative pool that the other tests run on).
@Suite struct DataBackupTests {
    static func point(_ i: Int) -> Point {
        Point(device: "t-1", signal: "temp", time: 1_700_000_000_000 + Int64(i) * 1_000, value: .number(Double(i)))
    }

    /// A data directory as the platform leaves it: tenant `acme` with 100 committed points (sequence 1), and
    /// 50 more journaled past them (sequence 2, not committed); a signing-key file beside.
    static func makeDataDirectory(_ path: String) async throws -> UInt64 {
        let storage = try SQLiteStorage(configuration: .init(directory: path))
        let registry = SQLiteRegistryStore(storage: storage)
        try await registry.saveTenant(Tenant(id: "acme"))
        let journal = try FileJournal(configuration: .init(directory: path + "/journal"))
        let committed = (0..<100).map(point)
        let first = try journal.append(tenant: "acme", points: committed)
        try await SQLitePointStore(storage: storage).write(
            PointBatch(tenant: "acme", points: committed, journalSequence: first))
        let last = try journal.append(tenant: "acme", points: (100..<150).map(point))
        try #"{"keys": []}"#.write(toFile: path + "/identity-keys.json", atomically: true, encoding: .utf8)
        return last
    }

    @Test func aFullBackupVerifiesAndRestoresTheCommittedPointsAndTheJournalPastThem() async throws {
        let dir = TemporaryDirectory("backup")
        let last = try await Self.makeDataDirectory(dir.path + "/data")
        let manifest = try await onOwnThread {
            try DataBackup.create(dataDirectory: dir.path + "/data", to: dir.path + "/set", version: "9.9.9")
        }
        #expect(manifest.journalSequence == last && manifest.version == "9.9.9" && manifest.kind == "full")
        let paths = Set(manifest.files.map(\.path))
        #expect(paths.isSuperset(of: ["system.sqlite", "tenants/acme.sqlite", "identity-keys.json"]), "\(paths)")
        #expect(paths.contains { $0.hasPrefix("journal/journal-") }, "\(paths)")
        #expect(!paths.contains { $0.hasSuffix("-wal") || $0.hasSuffix("-shm") }, "\(paths)")
        #expect(manifest.files.allSatisfy { $0.sha256.count == 64 })
        let checked = try await onOwnThread { try DataBackup.verify(dir.path + "/set") }
        #expect(checked.points == ["acme": 100])

        let restored = try await onOwnThread {
            try DataBackup.restore(from: dir.path + "/set", to: dir.path + "/restored", force: false)
        }
        #expect(restored.manifest == manifest)
        let storage = try SQLiteStorage(configuration: .init(directory: dir.path + "/restored"))
        let points = SQLitePointStore(storage: storage)
        let stored = try await points.range(
            .tenant("acme"), series: SeriesKey(device: "t-1", signal: "temp"), from: .min, to: .max, limit: 1_000,
            order: .ascending)
        #expect(stored.count == 100)
        let watermark = try await points.committedSequence(tenant: "acme")
        var replayed: [Point] = []
        let journal = try FileJournal(configuration: .init(directory: dir.path + "/restored/journal"))
        try journal.replay(after: watermark) { replayed += $0.points }
        #expect(replayed.count == 50, "the records past the committed sequence are there to replay")
        #expect(journal.lastSequence == last)
        #expect(
            (try? String(contentsOfFile: dir.path + "/restored/identity-keys.json", encoding: .utf8))
                == #"{"keys": []}"#)
    }

    @Test func aCorruptTruncatedOrUnfinishedSetIsAClearErrorAndRestoresNothing() async throws {
        let dir = TemporaryDirectory("backup-bad")
        _ = try await Self.makeDataDirectory(dir.path + "/data")
        try await onOwnThread { try Self.checkBadSets(dir) }
    }

    static func checkBadSets(_ dir: TemporaryDirectory) throws {
        try DataBackup.create(dataDirectory: dir.path + "/data", to: dir.path + "/set", version: "1")
        func damaged(_ name: String, _ change: (String) throws -> Void) throws -> String {
            let copy = dir.path + "/" + name
            try FileManager.default.copyItem(atPath: dir.path + "/set", toPath: copy)
            try change(copy)
            return copy
        }
        // One byte changed in a database.
        let corrupt = try damaged("corrupt") { set in
            let handle = try #require(FileHandle(forUpdatingAtPath: set + "/tenants/acme.sqlite"))
            try handle.seek(toOffset: 5_000)
            let byte = try handle.read(upToCount: 1) ?? Data([0])
            try handle.seek(toOffset: 5_000)
            try handle.write(contentsOf: Data([byte[0] ^ 0xFF]))
            try handle.close()
        }
        // A journal segment cut short.
        let truncated = try damaged("truncated") { set in
            let segment = try #require(
                try FileManager.default.contentsOfDirectory(atPath: set + "/journal").first { $0.hasPrefix("journal-") }
            )
            let handle = try #require(FileHandle(forUpdatingAtPath: set + "/journal/" + segment))
            try handle.truncate(atOffset: try handle.seekToEnd() - 1)
            try handle.close()
        }
        // The manifest never written (the backup stopped half-way).
        let unfinished = try damaged("unfinished") { set in
            try FileManager.default.removeItem(atPath: set + "/manifest.json")
        }
        for (set, says) in [(corrupt, "SHA-256"), (truncated, "truncated"), (unfinished, "manifest.json")] {
            do {
                _ = try DataBackup.verify(set)
                Issue.record("\(set) passed verification")
            } catch {
                #expect(error.code == .invalidArgument && error.message.contains(says), "\(error.message)")
            }
            #expect(throws: IoTError.self) {
                try DataBackup.restore(from: set, to: dir.path + "/target", force: false)
            }
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/target"), "nothing restored from \(set)")
        }
        // A target that is not empty needs force.
        try FileManager.default.createDirectory(atPath: dir.path + "/busy", withIntermediateDirectories: true)
        try "old".write(toFile: dir.path + "/busy/old.txt", atomically: true, encoding: .utf8)
        do {
            try DataBackup.restore(from: dir.path + "/set", to: dir.path + "/busy", force: false)
            Issue.record("a non-empty target was replaced without force")
        } catch {
            #expect(error.code == .conflict && error.message.contains("--force"), "\(error.message)")
        }
        #expect(FileManager.default.fileExists(atPath: dir.path + "/busy/old.txt"))
        try DataBackup.restore(from: dir.path + "/set", to: dir.path + "/busy", force: true)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/busy/old.txt"))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/busy/tenants/acme.sqlite"))
        // And a backup into a directory that is not empty, or inside the data directory, is refused.
        #expect(throws: IoTError.self) {
            try DataBackup.create(dataDirectory: dir.path + "/data", to: dir.path + "/busy", version: "1")
        }
        do {
            try DataBackup.create(dataDirectory: dir.path + "/data", to: dir.path + "/data/./backups/1", version: "1")
            Issue.record("a backup inside the data directory was taken")
        } catch {
            #expect(error.message.contains("inside the data directory"), "\(error.message)")
        }
    }
}
