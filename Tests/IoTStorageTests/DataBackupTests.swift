import Crypto
import Foundation
import IoTCore
import IoTStorage
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 22, items 1 to 3, on the library: a full backup of a data directory (databases, journal, other files)
/// with its manifest; incremental sets of the pages changed; sets sealed with AES-256-GCM; the journal shipped
/// between sets and a restore to a point in time; verification that catches a corrupt, truncated or unfinished
/// set; a restore that writes nothing from such a set, refuses a non-empty target without `force`, and gives back
/// the committed points and the journal's records past them; the retention of sets. The backup's blocking file work runs on a thread of its own, as iotd runs it
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
            try DataBackup.create(dataDirectory: dir.path + "/data", repository: dir.path + "/repo", version: "9.9.9")
        }
        #expect(manifest.journalSequence == last && manifest.version == "9.9.9" && manifest.kind == "full")
        let paths = Set(manifest.files.map(\.path))
        #expect(paths.isSuperset(of: ["system.sqlite", "tenants/acme.sqlite", "identity-keys.json"]), "\(paths)")
        #expect(paths.contains { $0.hasPrefix("journal/journal-") }, "\(paths)")
        #expect(!paths.contains { $0.hasSuffix("-wal") || $0.hasSuffix("-shm") }, "\(paths)")
        #expect(manifest.files.allSatisfy { $0.sha256.count == 64 })
        let checked = try await onOwnThread { try DataBackup.verify(dir.path + "/repo") }
        #expect(checked.points == ["acme": 100])

        let restored = try await onOwnThread {
            try DataBackup.restore(from: dir.path + "/repo", to: dir.path + "/restored", force: false)
        }
        #expect(restored.verification.manifest == manifest)
        // Both records: the first is committed, not trimmed (replay skips it by the watermark).
        #expect(restored.journalRecords == 2 && restored.journalThrough == last && restored.gaps.isEmpty)
        #expect(try await Self.points(in: dir.path + "/restored") == 100)
        var replayed: [Point] = []
        let storage = try SQLiteStorage(configuration: .init(directory: dir.path + "/restored"))
        let watermark = try await SQLitePointStore(storage: storage).committedSequence(tenant: "acme")
        let journal = try FileJournal(configuration: .init(directory: dir.path + "/restored/journal"))
        try journal.replay(after: watermark) { replayed += $0.points }
        #expect(replayed.count == 50, "the records past the committed sequence are there to replay")
        #expect(journal.lastSequence == last)
        #expect(
            (try? String(contentsOfFile: dir.path + "/restored/identity-keys.json", encoding: .utf8))
                == #"{"keys": []}"#)
    }

    /// The points committed in the tenant `acme` of a data directory.
    static func points(in dataDirectory: String) async throws -> Int {
        let storage = try SQLiteStorage(configuration: .init(directory: dataDirectory))
        return try await SQLitePointStore(storage: storage).range(
            .tenant("acme"), series: SeriesKey(device: "t-1", signal: "temp"), from: .min, to: .max, limit: 1_000_000,
            order: .ascending
        ).count
    }

    /// Commits `count` more points (numbered from `from`) to the data directory's tenant, through its journal.
    static func commit(_ range: Range<Int>, in path: String) async throws {
        let storage = try SQLiteStorage(configuration: .init(directory: path))
        let journal = try FileJournal(configuration: .init(directory: path + "/journal"))
        let points = range.map(point)
        let sequence = try journal.append(tenant: "acme", points: points)
        try await SQLitePointStore(storage: storage).write(
            PointBatch(tenant: "acme", points: points, journalSequence: sequence))
        try journal.trim(through: sequence)
        await storage.close()
    }

    @Test func anIncrementalSetHoldsOnlyTheChangedPagesAndItsChainRestoresEverything() async throws {
        let dir = TemporaryDirectory("backup-incremental")
        let data = dir.path + "/data"
        let repo = dir.path + "/repo"
        _ = try await Self.makeDataDirectory(data)
        try await Self.commit(150..<20_150, in: data)
        let full = try await onOwnThread { try DataBackup.create(dataDirectory: data, repository: repo, version: "1") }
        try await Self.commit(20_150..<20_250, in: data)
        let incremental = try await onOwnThread {
            try DataBackup.create(
                dataDirectory: data, repository: repo, kind: .incremental, version: "1", now: full.createdAt + 1)
        }
        #expect(incremental.kind == "incremental" && incremental.parent == full.id)
        let fullTenant = try #require(full.databases?.first { $0.path == "tenants/acme.sqlite" })
        let tenant = try #require(incremental.databases?.first { $0.path == "tenants/acme.sqlite" })
        #expect(tenant.stored == "delta" && tenant.pagesStored > 0)
        #expect(tenant.pagesStored * 10 < tenant.pages, "\(tenant.pagesStored) of \(tenant.pages) pages stored")
        let bytes = { (m: DataBackup.Manifest) in
            m.files.filter { !$0.path.hasPrefix("journal/") }.reduce(0) { $0 + $1.bytes }
        }
        #expect(bytes(incremental) * 5 < bytes(full), "incremental \(bytes(incremental)) bytes, full \(bytes(full))")
        #expect(fullTenant.stored == "whole")
        // Unchanged other files stay in the full set.
        #expect(incremental.others?.first { $0.path == "identity-keys.json" }?.set == full.id)
        #expect(!incremental.files.contains { $0.path == "identity-keys.json" })

        let restored = try await onOwnThread {
            try DataBackup.restore(from: repo, to: dir.path + "/restored", force: false)
        }
        #expect(restored.verification.chain.map(\.id) == [full.id, incremental.id])
        #expect(try await Self.points(in: dir.path + "/restored") == 20_200)
        // The full set alone still restores what it held.
        let older = try await onOwnThread {
            try DataBackup.restore(from: repo + "/" + full.id!, to: dir.path + "/older", force: false)
        }
        #expect(older.verification.points == ["acme": 20_100])
    }

    @Test func aSealedSetNeedsItsKeyAndHoldsNoPlaintext() async throws {
        let dir = TemporaryDirectory("backup-sealed")
        let data = dir.path + "/data"
        let repo = dir.path + "/repo"
        _ = try await Self.makeDataDirectory(data)
        try Data((0..<32).map { UInt8($0) }).write(to: URL(fileURLWithPath: dir.path + "/key"))
        try String(repeating: "ab", count: 32).write(toFile: dir.path + "/other.key", atomically: true, encoding: .utf8)
        let key = try BackupKey(file: dir.path + "/key")
        let other = try BackupKey(file: dir.path + "/other.key")
        #expect(key.id != other.id && key.id.count == 16)
        let manifest = try await onOwnThread {
            try DataBackup.create(dataDirectory: data, repository: repo, key: key, version: "1")
        }
        #expect(manifest.encryption?.algorithm == "AES-256-GCM" && manifest.encryption?.keyID == key.id)
        let stored = try Data(contentsOf: URL(fileURLWithPath: repo + "/" + manifest.id! + "/tenants/acme.sqlite"))
        #expect(stored.starts(with: Array("IOTAEAD1".utf8)))
        #expect(stored.range(of: Data("SQLite format 3".utf8)) == nil && stored.range(of: Data("t-1temp".utf8)) == nil)
        for (given, says) in [(nil, "give its key"), (other, "not this one")] as [(BackupKey?, String)] {
            do {
                _ = try DataBackup.verify(repo, key: given)
                Issue.record("verified with \(String(describing: given?.id))")
            } catch {
                #expect(error.message.contains(says), "\(error.message)")
            }
        }
        // An incremental set keeps its parent's key.
        #expect(throws: IoTError.self) {
            try DataBackup.create(dataDirectory: data, repository: repo, kind: .incremental, key: other, version: "1")
        }
        try await Self.commit(150..<250, in: data)
        _ = try await onOwnThread {
            try DataBackup.create(dataDirectory: data, repository: repo, kind: .incremental, key: key, version: "1")
        }
        let restored = try await onOwnThread {
            try DataBackup.restore(from: repo, to: dir.path + "/restored", key: key, force: false)
        }
        #expect(restored.verification.points == ["acme": 200])
        // One byte of ciphertext changed (and the manifest's digest made to match): the chunk does not open.
        let path = repo + "/" + manifest.id! + "/identity-keys.json"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[20] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        var edited = try String(contentsOfFile: repo + "/" + manifest.id! + "/manifest.json", encoding: .utf8)
        let old = try #require(manifest.files.first { $0.path == "identity-keys.json" }).sha256
        edited = edited.replacingOccurrences(of: old, with: SHA256Hex.of(bytes))
        try edited.write(toFile: repo + "/" + manifest.id! + "/manifest.json", atomically: true, encoding: .utf8)
        do {
            _ = try DataBackup.verify(repo + "/" + manifest.id!, key: key)
            Issue.record("a changed ciphertext passed")
        } catch {
            #expect(error.message.contains("does not decrypt"), "\(error.message)")
        }
    }

    @Test func shippedJournalRecordsRestoreToTheLatestStateOrToAPointInTime() async throws {
        let dir = TemporaryDirectory("backup-shipped")
        let data = dir.path + "/data"
        let repo = dir.path + "/repo"
        _ = try await Self.makeDataDirectory(data)
        try await onOwnThread {
            _ = try DataBackup.create(dataDirectory: data, repository: repo, version: "1")
            let journal = try FileJournal(configuration: .init(directory: data + "/journal", segmentBytes: 4_096))
            let shipper = try JournalShipper(journal: journal, repository: repo)
            #expect(try shipper.ship()?.records == 2, "the journal's records, not yet shipped")
            #expect(try shipper.ship() == nil)
            // Three shipments of 40 records each (of 10 points), over several segments of 4 KiB; each committed and trimmed after it is
            // shipped, as the ingestor does: the journal keeps a segment until it is shipped.
            var times: [Int64] = []
            for round in 0..<3 {
                for i in 0..<40 {
                    let first = 1_000 + (round * 40 + i) * 10
                    let sequence = try journal.append(tenant: "acme", points: (first..<(first + 10)).map(Self.point))
                    if i == 39 { try journal.trim(through: sequence - 20) }
                }
                usleep(5_000)
                let shipment = try #require(try shipper.ship())
                #expect(shipment.records == 40)
                times.append(shipment.at)
                usleep(5_000)
            }
            let index = try JournalShipper.index(of: repo)
            #expect(index.count == 4 && zip(index, index.dropFirst()).allSatisfy { $0.last + 1 == $1.first })

            let latest = try DataBackup.restore(from: repo, to: dir.path + "/latest", force: false)
            #expect(latest.journalRecords == 122 && latest.shippedRecords == 120 && latest.gaps.isEmpty)
            // To the second shipment: the third's records are not there.
            let earlier = try DataBackup.restore(from: repo, to: dir.path + "/earlier", at: times[1] + 1, force: false)
            #expect(earlier.journalRecords == 82 && earlier.journalThrough == index[2].last)
            var count = 0
            try FileJournal(configuration: .init(directory: dir.path + "/earlier/journal")).replay(after: 0) {
                count += $0.points.count
            }
            #expect(count == 100 + 50 + 80 * 10)
        }
    }

    @Test func pruningKeepsTheNewestFullSetsAndWhatBuildsOnThem() async throws {
        let dir = TemporaryDirectory("backup-prune")
        let data = dir.path + "/data"
        let repo = dir.path + "/repo"
        _ = try await Self.makeDataDirectory(data)
        try await onOwnThread {
            var ids: [String] = []
            for (i, kind) in [DataBackup.Kind.full, .incremental, .full, .incremental, .full].enumerated() {
                ids.append(
                    try DataBackup.create(
                        dataDirectory: data, repository: repo, kind: kind, version: "1",
                        now: 1_700_000_000_000 + Int64(i)
                    ).id!)
            }
            let removed = try DataBackup.prune(repository: repo, keepFull: 2)
            #expect(removed == Array(ids.prefix(2)))
            #expect(try DataBackup.sets(in: repo).map(\.id) == Array(ids.suffix(3)))
            _ = try DataBackup.verify(repo)
        }
    }

    @Test func aCorruptTruncatedOrUnfinishedSetIsAClearErrorAndRestoresNothing() async throws {
        let dir = TemporaryDirectory("backup-bad")
        _ = try await Self.makeDataDirectory(dir.path + "/data")
        try await onOwnThread { try Self.checkBadSets(dir) }
    }

    static func checkBadSets(_ dir: TemporaryDirectory) throws {
        let id = try DataBackup.create(dataDirectory: dir.path + "/data", repository: dir.path + "/repo", version: "1")
            .id!
        func damaged(_ name: String, _ change: (String) throws -> Void) throws -> String {
            let copy = dir.path + "/" + name
            try FileManager.default.copyItem(atPath: dir.path + "/repo", toPath: copy)
            try change(copy + "/" + id)
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
            try DataBackup.restore(from: dir.path + "/repo", to: dir.path + "/busy", force: false)
            Issue.record("a non-empty target was replaced without force")
        } catch {
            #expect(error.code == .conflict && error.message.contains("--force"), "\(error.message)")
        }
        #expect(FileManager.default.fileExists(atPath: dir.path + "/busy/old.txt"))
        try DataBackup.restore(from: dir.path + "/repo", to: dir.path + "/busy", force: true)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/busy/old.txt"))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/busy/tenants/acme.sqlite"))
        // A backup into a set, or inside the data directory, is refused.
        #expect(throws: IoTError.self) {
            try DataBackup.create(dataDirectory: dir.path + "/data", repository: dir.path + "/repo/" + id, version: "1")
        }
        do {
            try DataBackup.create(
                dataDirectory: dir.path + "/data", repository: dir.path + "/data/./backups/1", version: "1")
            Issue.record("a backup inside the data directory was taken")
        } catch {
            #expect(error.message.contains("inside the data directory"), "\(error.message)")
        }
    }
}

/// The SHA-256 of bytes in hex, to mend a manifest by hand.
enum SHA256Hex {
    static func of(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}
