internal import CIoTSQLite
public import IoTCore
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#endif

/// Backups of a data directory (``SQLiteStorage``'s databases, the ``FileJournal`` and the files beside them)
/// taken while the platform runs, kept in a backup repository; their verification and their restore, to the
/// latest state or to a point in time.
///
/// A repository is a directory of sets, each a folder named by its time and kind
/// (`20261206T010203.123Z-full`), with `manifest.json` written last (a set without one did not finish), and
/// `shipped/`, the journal records that ``JournalShipper`` copies every few seconds:
///
/// - A **full** set holds every database as a page-for-page snapshot (SQLite's online backup API, taken
///   beside a running writer), the journal's segments, the other files (signing keys, …), and each database's
///   page digests.
/// - An **incremental** set holds only the pages that changed since its parent (the repository's newest set),
///   the journal, and the other files that changed; restoring it applies the chain, full set first.
/// - Sets may be sealed with AES-256-GCM (``BackupKey``): every file of the set and every shipment; the
///   manifest, which holds sizes and digests but no data, stays readable.
///
/// ``restore(from:to:at:key:force:)`` verifies the chain first and writes nothing from a corrupt or truncated
/// one; it builds the databases, then one journal segment of the records past what the databases committed
/// (the set's journal, then the shipped records, cut at the point in time asked for), which the platform
/// replays when it starts there: every record acknowledged before the last shipment is there once.
///
/// ```swift
/// try DataBackup.create(dataDirectory: "/var/lib/iotd", repository: "/backup/iotd", version: "0.3.0")
/// try DataBackup.create(dataDirectory: "/var/lib/iotd", repository: "/backup/iotd", kind: .incremental, version: "0.3.0")
/// let checked = try DataBackup.verify("/backup/iotd")
/// try DataBackup.restore(from: "/backup/iotd", to: "/var/lib/iotd-restored", force: false)
/// ```
public enum DataBackup {
    /// What a set holds besides what changed: everything (``full``), or the changes since its parent.
    public enum Kind: String, Codable, Sendable, Hashable {
        /// Every database, whole.
        case full
        /// The pages and files changed since the parent set.
        case incremental
    }

    /// What a backup set holds: `manifest.json` at its top.
    public struct Manifest: Codable, Sendable, Hashable {
        /// One file stored in the set.
        public struct File: Codable, Sendable, Hashable {
            /// The path in the set, relative, `/`-separated.
            public var path: String
            /// Its size in bytes, as stored (sealed, when the set is encrypted).
            public var bytes: Int
            /// Its SHA-256 as stored, lower-case hex.
            public var sha256: String
        }

        /// A database of the data directory as this set restores it.
        public struct Database: Codable, Sendable, Hashable {
            /// Its path in the data directory (`system.sqlite`, `tenants/acme.sqlite`).
            public var path: String
            /// SQLite's page size.
            public var pageSize: Int
            /// Its pages.
            public var pages: Int
            /// The SHA-256 of the restored database file.
            public var sha256: String
            /// `whole` (the file is in this set) or `delta` (the pages changed since the parent set).
            public var stored: String
            /// The pages this set holds.
            public var pagesStored: Int
        }

        /// Any other file of the data directory, and the set that holds it.
        public struct Other: Codable, Sendable, Hashable {
            /// Its path in the data directory.
            public var path: String
            /// Its SHA-256 (of the plaintext).
            public var sha256: String
            /// The ``Manifest/id`` of the set in the chain that stores it.
            public var set: String
        }

        /// How the set's files are sealed.
        public struct Encryption: Codable, Sendable, Hashable {
            /// `AES-256-GCM`.
            public var algorithm: String
            /// The ``BackupKey/id`` of the key.
            public var keyID: String
        }

        /// The manifest format: 2 (1, a full set of the first release, is still read).
        public var format: Int
        /// The set's name in its repository (its folder); empty in a format-1 set.
        public var id: String?
        /// The release of the SDK that wrote the set.
        public var version: String
        /// When the backup began, in milliseconds since 1970.
        public var createdAt: Int64
        /// When the backup's last database was read, in milliseconds since 1970.
        public var completedAt: Int64?
        /// `full` or `incremental`.
        public var kind: String
        /// The set an incremental one builds on.
        public var parent: String?
        /// The last journal record in the set: what the platform acknowledged before the journal was copied.
        public var journalSequence: UInt64
        /// Every record up to this one was committed to the databases before they were read.
        public var journalTrimmed: UInt64?
        /// Set when the files are sealed.
        public var encryption: Encryption?
        /// Every file stored in the set but the manifest.
        public var files: [File]
        /// The databases the set restores (format 2).
        public var databases: [Database]?
        /// The other files the set restores, wherever in the chain they are stored (format 2).
        public var others: [Other]?
    }

    /// What ``verify(_:key:)`` found: the chain is whole.
    public struct Verification: Sendable, Hashable {
        /// The manifest of the set checked (the newest of the chain).
        public var manifest: Manifest
        /// The chain, full set first.
        public var chain: [Manifest]
        /// Bytes checked.
        public var bytes: Int
        /// Points stored per tenant in the restored databases (not counting the journal's records past them).
        public var points: [TenantID: Int]
    }

    /// What ``restore(from:to:at:key:force:)`` did.
    public struct Restoration: Sendable, Hashable {
        /// The chain restored, checked.
        public var verification: Verification
        /// The journal records written for the platform to replay (past what the databases committed).
        public var journalRecords: Int
        /// The last of them: where the restored state ends.
        public var journalThrough: UInt64
        /// The records of them that came from shipments (``JournalShipper``) rather than from the set.
        public var shippedRecords: Int
        /// Ranges of journal records that neither the set nor a shipment holds (shipping was not running).
        public var gaps: [ClosedRange<UInt64>]
    }

    static let manifestName = "manifest.json"
    static let shippedFolder = "shipped"

    // MARK: - Creating

    /// Takes a backup of `dataDirectory` into a new set in `repository` (created if missing) and returns its
    /// manifest.
    ///
    /// Safe while the platform runs on `dataDirectory`: the journal's segments are copied first (a segment's torn
    /// or zero-filled tail is cut off in the copy), the databases are read as snapshots after them, so every
    /// record acknowledged before the journal's copy is in the set, committed or to be replayed. An
    /// ``Kind/incremental`` set with no set before it in the repository is taken full.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a missing data directory, a repository inside it,
    ///   or an incremental set whose parent was sealed with another key (or none); ``IoTCore/IoTError/Code/storage``
    ///   naming the file that could not be read or written.
    @discardableResult
    public static func create(
        dataDirectory: String, repository: String, kind: Kind = .full, key: BackupKey? = nil, version: String,
        now: Int64 = SystemClock().now()
    ) throws(IoTError) -> Manifest {
        let source = dataDirectory.hasSuffix("/") ? String(dataDirectory.dropLast()) : dataDirectory
        guard BackupFile.isDirectory(source) else {
            throw IoTError(
                .invalidArgument, "data directory \(source) does not exist; check dataDirectory in the configuration")
        }
        if (BackupFile.absolute(repository) + "/").hasPrefix(BackupFile.absolute(source) + "/") {
            throw IoTError(
                .invalidArgument,
                "backup repository \(repository) is inside the data directory \(source); give one outside it")
        }
        if BackupFile.isFile(repository + "/" + manifestName) {
            throw IoTError(
                .invalidArgument,
                "\(repository) is a backup set, not a repository; give the folder that holds the sets")
        }
        try makeDirectories(repository)
        let parent = kind == .incremental ? try sets(in: repository).last : nil
        if let parent, parent.encryption?.keyID != key?.id {
            throw IoTError(
                .invalidArgument,
                "the last set in \(repository) (\(parent.id ?? "?")) was \(parent.encryption == nil ? "not sealed" : "sealed with another key"); an incremental set uses its parent's key, so take a full backup"
            )
        }
        let kind: Kind = parent == nil ? .full : kind
        let id = setID(now, kind)
        let staging = repository + "/" + id + ".partial"
        let plain = staging + "/.plain"
        BackupFile.removeTree(staging)
        try makeDirectories(plain)
        defer { BackupFile.removeTree(plain) }
        var files: [Manifest.File] = []

        // 1. The journal, first: a record trimmed from it meanwhile is committed, so in the databases read after
        //    it; a record it holds that a database has also committed is skipped on replay.
        let journalTrimmed = FileJournal.readTrimmed(source + "/journal")
        var journalSequence: UInt64 = 0
        if BackupFile.isDirectory(source + "/journal") {
            try makeDirectories(plain + "/journal")
            for name in try BackupFile.entries(source + "/journal").sorted()
            where name.hasPrefix("journal-") && BackupFile.isFile(source + "/journal/" + name) {
                do {
                    try BackupFile.copyFile(source + "/journal/" + name, to: plain + "/journal/" + name)
                } catch  where !BackupFile.isFile(source + "/journal/" + name) {
                    unlink(plain + "/journal/" + name)  // trimmed while listed: committed, in the databases
                }
            }
            try BackupFile.write(Array("\(journalTrimmed)\n".utf8), to: plain + "/journal/trimmed")
            // Opening the copy cuts a torn or zero-filled tail off and says how far it reaches.
            do {
                let copy = try FileJournal(
                    configuration: .init(directory: plain + "/journal", durability: .fsync),
                    logger: Logger(label: "iot.backup"))
                journalSequence = copy.lastSequence
            }
            for name in try BackupFile.entries(plain + "/journal").sorted() {
                files.append(
                    try BackupFile.store(plain + "/journal/" + name, in: staging, as: "journal/" + name, key: key))
            }
        }

        // 2. The databases, each a consistent snapshot, whole or as the pages changed since the parent.
        var databases: [Manifest.Database] = []
        let parentDatabases = Dictionary(
            (parent?.databases ?? []).map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        for path in try BackupFile.relativeFiles(source).filter({ $0.hasSuffix(".sqlite") }).sorted() {
            let snapshot = plain + "/snapshot.sqlite"
            unlink(snapshot)
            try PageImage.snapshot(database: source + "/" + path, into: snapshot)
            let summary = try PageImage.summarize(snapshot)
            var parentDigests: [UInt8]?
            if let parent, let id = parent.id, let before = parentDatabases[path], before.pageSize == summary.pageSize {
                parentDigests = try BackupFile.readPlain(in: repository + "/" + id, path + ".pages", key: key)
            }
            let stored: Int
            if let parentDigests {
                let writer = try BackupFile.Writer(directory: staging, relative: path + ".delta", key: key)
                stored = try PageImage.writeDelta(of: snapshot, summary: summary, against: parentDigests, into: writer)
                files.append(try writer.finish())
            } else {
                files.append(try BackupFile.store(snapshot, in: staging, as: path, key: key))
                stored = summary.pages
            }
            let digests = try BackupFile.Writer(directory: staging, relative: path + ".pages", key: key)
            try digests.write(summary.digests)
            files.append(try digests.finish())
            databases.append(
                Manifest.Database(
                    path: path, pageSize: summary.pageSize, pages: summary.pages, sha256: summary.sha256,
                    stored: parentDigests == nil ? "whole" : "delta", pagesStored: stored))
            unlink(snapshot)
        }

        // 3. Everything else (signing keys, …), but SQLite's own side files: stored when new or changed.
        var others: [Manifest.Other] = []
        let parentOthers = Dictionary(
            (parent?.others ?? []).map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        for path in try BackupFile.relativeFiles(source).sorted()
        where !path.hasSuffix(".sqlite") && !path.hasPrefix("journal/") {
            guard !["-wal", "-shm", "-journal"].contains(where: { path.hasSuffix($0) }) else { continue }
            let copy = plain + "/other"
            try BackupFile.copyFile(source + "/" + path, to: copy)
            let digest = try BackupFile.sha256(of: copy).hex
            if let before = parentOthers[path], before.sha256 == digest {
                others.append(before)
            } else {
                files.append(try BackupFile.store(copy, in: staging, as: path, key: key))
                others.append(Manifest.Other(path: path, sha256: digest, set: id))
            }
            unlink(copy)
        }

        BackupFile.removeTree(plain)
        let manifest = Manifest(
            format: 2, id: id, version: version, createdAt: now, completedAt: SystemClock().now(), kind: kind.rawValue,
            parent: parent?.id, journalSequence: journalSequence, journalTrimmed: journalTrimmed,
            encryption: key.map { Manifest.Encryption(algorithm: "AES-256-GCM", keyID: $0.id) },
            files: files.sorted { $0.path < $1.path }, databases: databases, others: others)
        try BackupFile.write(try encode(manifest), to: staging + "/" + manifestName)
        guard rename(staging, repository + "/" + id) == 0 else { throw BackupFile.fileError("rename", staging) }
        BackupFile.syncDirectory(repository)
        return manifest
    }

    /// The complete sets of `repository`, oldest first (a folder without a manifest, or still being written, is
    /// left out).
    public static func sets(in repository: String) throws(IoTError) -> [Manifest] {
        guard BackupFile.isDirectory(repository) else { return [] }
        var result: [Manifest] = []
        for name in try BackupFile.entries(repository).sorted()
        where !name.hasSuffix(".partial") && BackupFile.isFile(repository + "/" + name + "/" + manifestName) {
            var manifest = try readManifest(repository + "/" + name)
            if manifest.id == nil { manifest.id = name }
            result.append(manifest)
        }
        return result.sorted { ($0.createdAt, $0.id ?? "") < ($1.createdAt, $1.id ?? "") }
    }

    /// Removes the sets of `repository` older than its `keepFull`-th newest full set (with the incremental sets
    /// built on them), and the shipped journal records that only they could use; returns the sets removed.
    @discardableResult
    public static func prune(repository: String, keepFull: Int) throws(IoTError) -> [String] {
        let all = try sets(in: repository)
        let fulls = all.filter { $0.kind == Kind.full.rawValue }
        guard keepFull >= 1, fulls.count > keepFull else { return [] }
        let oldestKept = fulls[fulls.count - keepFull]
        let removed = all.prefix { $0.id != oldestKept.id }.compactMap(\.id)
        for id in removed { BackupFile.removeTree(repository + "/" + id) }
        try JournalShipper.prune(repository: repository, through: oldestKept.journalTrimmed ?? 0)
        BackupFile.syncDirectory(repository)
        return removed
    }

    // MARK: - Verifying

    /// Checks a set and the chain it builds on: the manifests, every stored file's size and SHA-256, that every
    /// sealed chunk opens with `key`, and, on databases rebuilt in a scratch folder beside the repository,
    /// `PRAGMA integrity_check` and each tenant's points.
    ///
    /// - Parameter path: a set, or a repository (its newest set).
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming what is missing, truncated or corrupt.
    public static func verify(_ path: String, key: BackupKey? = nil) throws(IoTError) -> Verification {
        let (repository, chain) = try chain(of: path, at: nil)
        let scratch = repository + "/.verify-\(getpid())"
        BackupFile.removeTree(scratch)
        defer { BackupFile.removeTree(scratch) }
        return try build(repository: repository, chain: chain, key: key, into: scratch)
    }

    // MARK: - Restoring

    /// Restores a set (with the chain it builds on) and the shipped journal records after it into
    /// `dataDirectory`: verifies first (nothing is written from a chain that fails), builds the data directory
    /// beside the target and renames it into place.
    ///
    /// - Parameters:
    ///   - path: a repository (its newest set, or the newest completed by `at`), or one set.
    ///   - at: a point in time, in milliseconds since 1970: the state the last shipment at or before it held
    ///     (so to within the shipping interval); `nil` for everything shipped.
    ///   - force: replace a target that is not empty (its old contents are removed); without it such a
    ///     target is refused.
    /// - Throws: as ``verify(_:key:)``; ``IoTCore/IoTError/Code/conflict`` for a non-empty target without `force`;
    ///   ``IoTCore/IoTError/Code/invalidArgument`` when no set was completed by `at`.
    @discardableResult
    public static func restore(
        from path: String, to dataDirectory: String, at: Int64? = nil, key: BackupKey? = nil, force: Bool
    ) throws(IoTError) -> Restoration {
        let target = dataDirectory.hasSuffix("/") ? String(dataDirectory.dropLast()) : dataDirectory
        if BackupFile.isDirectory(target), !(try BackupFile.entries(target)).isEmpty, !force {
            throw IoTError(
                .conflict, "\(target) is not empty; restore into a new directory, or add --force to replace it")
        }
        let (repository, chain) = try chain(of: path, at: at)
        let staging = target + ".restoring-\(getpid())"
        BackupFile.removeTree(staging)
        var done = false
        defer { if !done { BackupFile.removeTree(staging) } }
        let checked = try build(repository: repository, chain: chain, key: key, into: staging)
        let head = chain[chain.count - 1]
        let journal = try JournalShipper.assemble(
            set: repository + "/" + (head.id ?? ""), manifest: head, repository: repository, key: key, at: at,
            into: staging + "/journal")
        if BackupFile.isDirectory(target) { BackupFile.removeTree(target) }
        guard rename(staging, target) == 0 else {
            let reason = String(cString: strerror(errno))
            throw IoTError(
                .storage, "cannot move the restored files from \(staging) to \(target): \(reason)", nativeCode: errno,
                domain: .posix)
        }
        done = true
        BackupFile.syncDirectory(BackupFile.parent(of: BackupFile.absolute(target)))
        return Restoration(
            verification: checked, journalRecords: journal.records, journalThrough: journal.through,
            shippedRecords: journal.shipped, gaps: journal.gaps)
    }

    // MARK: - Chains

    /// The repository and the chain of sets (full first) that `path` names: a set, or a repository's newest set
    /// (completed by `at`, when given).
    static func chain(of path: String, at: Int64?) throws(IoTError) -> (String, [Manifest]) {
        let path = path.hasSuffix("/") ? String(path.dropLast()) : path
        if BackupFile.isFile(path + "/" + manifestName) {
            var manifest = try readManifest(path)
            guard manifest.format >= 2 else { return (BackupFile.parent(of: path), [manifest]) }
            manifest.id = manifest.id ?? String(path.split(separator: "/").last ?? "")
            let repository = BackupFile.parent(of: BackupFile.absolute(path))
            return (repository, try chain(ending: manifest, in: repository))
        }
        guard BackupFile.isDirectory(path) else {
            throw IoTError(.invalidArgument, "\(path) does not exist; give a backup repository or a set in one")
        }
        let all = try sets(in: path)
        let eligible = at.map { at in all.filter { ($0.completedAt ?? $0.createdAt) <= at } } ?? all
        guard let head = eligible.last else {
            if let at, let first = all.first {
                throw IoTError(
                    .invalidArgument,
                    "no backup set in \(path) was complete by \(at) ms; the oldest completed at \(first.completedAt ?? first.createdAt) ms"
                )
            }
            throw IoTError(
                .invalidArgument,
                "\(path) holds no complete backup set (a set without \(manifestName) did not finish, or this is not a backup)"
            )
        }
        return (path, try chain(ending: head, in: path))
    }

    private static func chain(ending head: Manifest, in repository: String) throws(IoTError) -> [Manifest] {
        var chain = [head]
        while let parent = chain[0].parent {
            guard BackupFile.isFile(repository + "/" + parent + "/" + manifestName) else {
                throw IoTError(
                    .invalidArgument,
                    "\(chain[0].id ?? "?") builds on \(parent), which is not in \(repository) (removed?); restore an older full set"
                )
            }
            var manifest = try readManifest(repository + "/" + parent)
            manifest.id = manifest.id ?? parent
            chain.insert(manifest, at: 0)
        }
        return chain
    }

    /// Checks every stored file of `chain`, then builds its databases and other files into `target`, checking each
    /// database's SHA-256, integrity and points.
    private static func build(
        repository: String, chain: [Manifest], key: BackupKey?, into target: String
    ) throws(IoTError) -> Verification {
        let head = chain[chain.count - 1]
        var bytes = 0
        for manifest in chain {
            guard (1...2).contains(manifest.format) else {
                throw IoTError(
                    .invalidArgument,
                    "\(manifest.id ?? "the set") has manifest format \(manifest.format), newer than this release reads; upgrade"
                )
            }
            if let encryption = manifest.encryption {
                guard let key else {
                    throw IoTError(
                        .invalidArgument,
                        "\(manifest.id ?? "the set") is sealed (AES-256-GCM); give its key (--key-file, backup.keyFile)"
                    )
                }
                guard key.id == encryption.keyID else {
                    throw IoTError(
                        .invalidArgument,
                        "\(manifest.id ?? "the set") was sealed with key \(encryption.keyID), not this one (\(key.id))")
                }
            }
            bytes += try checkFiles(of: manifest, in: setDirectory(repository, manifest))
        }
        try makeDirectories(target)
        var points: [TenantID: Int] = [:]
        guard head.format >= 2, let databases = head.databases else {
            // A format-1 set: every file whole, databases written with VACUUM INTO.
            let directory = setDirectory(repository, head)
            for file in head.files {
                try makeDirectories(BackupFile.parent(of: target + "/" + file.path))
                try BackupFile.copyFile(directory + "/" + file.path, to: target + "/" + file.path)
                if file.path.hasSuffix(".sqlite") {
                    let count = try check(database: target + "/" + file.path, name: file.path)
                    if let tenant = tenant(of: file.path) { points[tenant] = count }
                }
            }
            return Verification(manifest: head, chain: chain, bytes: bytes, points: points)
        }
        let sealed = head.encryption == nil ? nil : key
        for database in databases {
            let path = target + "/" + database.path
            try makeDirectories(BackupFile.parent(of: path))
            // From the newest set holding it whole, through the deltas after it.
            guard
                let base = chain.lastIndex(where: { set in
                    set.databases?.contains { $0.path == database.path && $0.stored == "whole" } == true
                })
            else {
                throw IoTError(
                    .invalidArgument, "no set of the chain holds \(database.path) whole; the chain is damaged")
            }
            _ = try BackupFile.restore(database.path, of: setDirectory(repository, chain[base]), key: sealed, to: path)
            for set in chain[(base + 1)...] where set.databases?.contains(where: { $0.path == database.path }) == true {
                try PageImage.applyDelta(
                    in: setDirectory(repository, set), database.path + ".delta", key: sealed, to: path)
            }
            let restored = try BackupFile.sha256(of: path)
            guard restored.hex == database.sha256, restored.bytes == database.pages * database.pageSize else {
                throw IoTError(
                    .invalidArgument,
                    "\(database.path) rebuilt from the chain differs from what \(head.id ?? "the set") recorded; the chain is damaged"
                )
            }
            let count = try check(database: path, name: database.path)
            if let tenant = tenant(of: database.path) { points[tenant] = count }
        }
        for other in head.others ?? [] {
            guard let holder = chain.first(where: { $0.id == other.set }) else {
                throw IoTError(.invalidArgument, "\(other.path) is kept in \(other.set), which is not in the chain")
            }
            let written = try BackupFile.restore(
                other.path, of: setDirectory(repository, holder), key: sealed, to: target + "/" + other.path)
            guard written.sha256 == other.sha256 else {
                throw IoTError(.invalidArgument, "\(other.path) differs from its manifest's digest; the set is damaged")
            }
        }
        return Verification(manifest: head, chain: chain, bytes: bytes, points: points)
    }

    /// Checks each stored file of a set: present, its size and SHA-256; returns the bytes checked.
    private static func checkFiles(of manifest: Manifest, in directory: String) throws(IoTError) -> Int {
        var bytes = 0
        for file in manifest.files {
            let path = directory + "/" + file.path
            guard !file.path.contains(".."), BackupFile.isFile(path) else {
                throw IoTError(.invalidArgument, "the backup set lacks \(file.path), which its manifest lists")
            }
            let (size, digest) = try BackupFile.sha256(of: path)
            guard size == file.bytes else {
                throw IoTError(
                    .invalidArgument,
                    "\(file.path) has \(size) bytes, its manifest says \(file.bytes): the set is truncated or changed")
            }
            guard digest == file.sha256 else {
                throw IoTError(
                    .invalidArgument, "\(file.path): its SHA-256 differs from the manifest's: the set is corrupt")
            }
            bytes += size
        }
        return bytes
    }

    static func setDirectory(_ repository: String, _ manifest: Manifest) -> String {
        manifest.format >= 2 ? repository + "/" + (manifest.id ?? "") : repository
    }

    private static func tenant(of path: String) -> TenantID? {
        guard path.hasPrefix("tenants/"), path.hasSuffix(".sqlite") else { return nil }
        return TenantID(String(path.dropFirst("tenants/".count).dropLast(".sqlite".count)))
    }

    /// A set's name: its start in UTC to the millisecond, and its kind; names sort by time.
    static func setID(_ millis: Int64, _ kind: Kind) -> String {
        var seconds = time_t(millis / 1_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let ms = millis % 1_000
        let fraction = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))"
            + "\(two(parts.tm_min))\(two(parts.tm_sec)).\(fraction)Z-\(kind.rawValue)"
    }

    private static func readManifest(_ directory: String) throws(IoTError) -> Manifest {
        let path = directory + "/" + manifestName
        guard BackupFile.isFile(path) else {
            throw IoTError(
                .invalidArgument,
                "\(directory) is not a complete backup set: it has no \(manifestName) (the backup did not finish, or this is not a backup)"
            )
        }
        do {
            return try JSONDecoder().decode(Manifest.self, from: try BackupFile.read(path))
        } catch {
            throw IoTError(.invalidArgument, "\(path) cannot be read: \(error); the set is damaged")
        }
    }

    private static func encode(_ manifest: Manifest) throws(IoTError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { return [UInt8](try encoder.encode(manifest)) } catch {
            throw IoTError(.storage, "cannot encode the manifest: \(error)")
        }
    }

    // MARK: - Databases

    /// `PRAGMA integrity_check` and, for a tenant's database, its points (on the rebuilt copy: opening it
    /// writes its header, and its last close removes its WAL).
    private static func check(database path: String, name: String) throws(IoTError) -> Int {
        let connection = try SQLiteConnection(path: path)
        defer { connection.withLock { connection.close() } }
        do {
            return try connection.withLock { () throws -> Int in
                let integrity = try connection.statement("PRAGMA integrity_check")
                defer { integrity.reset() }
                var problems: [String] = []
                while try integrity.step() { problems.append(integrity.string(0)) }
                guard problems == ["ok"] else {
                    throw IoTError(
                        .invalidArgument,
                        "\(name) fails SQLite's integrity check: \(problems.prefix(3).joined(separator: "; "))")
                }
                let table = try connection.statement(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'points'")
                defer { table.reset() }
                guard try table.step(), table.int64(0) > 0 else { return 0 }
                let count = try connection.statement("SELECT count(*) FROM points")
                defer { count.reset() }
                return try count.step() ? Int(count.int64(0)) : 0
            }
        } catch {
            throw error as? IoTError ?? IoTError(.storage, "\(path): \(error)")
        }
    }
}
