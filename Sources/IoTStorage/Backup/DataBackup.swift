internal import CIoTSQLite
import Crypto
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

/// Full backups of a data directory (``SQLiteStorage``'s databases, the ``FileJournal`` and the files beside
/// them) taken while the platform runs, their verification, and their restore.
///
/// - ``create(dataDirectory:to:version:now:)`` copies the journal's segments, then each SQLite database
///   consistently with `VACUUM INTO` (a snapshot, taken beside a running writer), then the other files, and
///   writes `manifest.json` last: each file's size and SHA-256, the journal's last sequence, the release. A set
///   without its manifest did not finish.
/// - ``verify(_:)`` checks every file against the manifest, runs `PRAGMA integrity_check` on every database,
///   and counts each tenant's points.
/// - ``restore(from:to:force:)`` verifies first and restores nothing from a corrupt or truncated set; it
///   writes into a new directory beside the target and renames it into place. On start the platform replays
///   the journal past each tenant's committed sequence, as after any restart: what was acknowledged before
///   the backup's journal copy is there once.
///
/// ```swift
/// let manifest = try DataBackup.create(dataDirectory: "/var/lib/iotd", to: "/backup/2026-12-05", version: "0.2.0")
/// let checked = try DataBackup.verify("/backup/2026-12-05")
/// try DataBackup.restore(from: "/backup/2026-12-05", to: "/var/lib/iotd-restored", force: false)
/// ```
public enum DataBackup {
    /// What a backup set holds: `manifest.json` at its top.
    public struct Manifest: Codable, Sendable, Hashable {
        /// One file of the set.
        public struct File: Codable, Sendable, Hashable {
            /// The path in the set (and in the data directory), relative, `/`-separated.
            public var path: String
            /// Its size in bytes.
            public var bytes: Int
            /// Its SHA-256, lower-case hex.
            public var sha256: String
        }

        /// The manifest format (1).
        public var format: Int
        /// The release of the SDK that wrote the set.
        public var version: String
        /// When the backup began, in milliseconds since 1970.
        public var createdAt: Int64
        /// `full`.
        public var kind: String
        /// The last journal record in the set: what the platform acknowledged before the journal was copied.
        public var journalSequence: UInt64
        /// Every file of the set but the manifest.
        public var files: [File]
    }

    /// What ``verify(_:)`` found: the set is whole.
    public struct Verification: Sendable, Hashable {
        /// The manifest read.
        public var manifest: Manifest
        /// Bytes checked.
        public var bytes: Int
        /// Points stored per tenant in the set's databases (not counting the journal's records past them).
        public var points: [TenantID: Int]
    }

    static let manifestName = "manifest.json"

    /// Takes a full backup of `dataDirectory` into `directory`, which must not exist or be empty.
    ///
    /// Safe while the platform runs on `dataDirectory`: the journal's segments are copied first (a segment's torn
    /// or zero-filled tail is cut off in the copy), the databases are read as snapshots after them, so every
    /// record acknowledged before the journal's copy is in the set, committed or to be replayed.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a missing data directory or a non-empty target;
    ///   ``IoTCore/IoTError/Code/storage`` naming the file that could not be read or written.
    @discardableResult
    public static func create(
        dataDirectory: String, to directory: String, version: String, now: Int64 = SystemClock().now()
    ) throws(IoTError) -> Manifest {
        let source = dataDirectory.hasSuffix("/") ? String(dataDirectory.dropLast()) : dataDirectory
        guard isDirectory(source) else {
            throw IoTError(
                .invalidArgument, "data directory \(source) does not exist; check dataDirectory in the configuration")
        }
        if isDirectory(directory), !(try entries(directory)).isEmpty {
            throw IoTError(.invalidArgument, "backup directory \(directory) is not empty; give a new one")
        }
        if (absolute(directory) + "/").hasPrefix(absolute(source) + "/") {
            throw IoTError(
                .invalidArgument,
                "backup directory \(directory) is inside the data directory \(source); give one outside it")
        }
        try makeDirectories(directory)
        var paths: [String] = []
        // 1. The journal, first: a record trimmed from it meanwhile is committed, so in the databases read after
        //    it; a record it holds that a database has also committed is skipped on replay.
        var journalSequence: UInt64 = 0
        if isDirectory(source + "/journal") {
            try makeDirectories(directory + "/journal")
            for name in try entries(source + "/journal").sorted() where isFile(source + "/journal/" + name) {
                do {
                    try copyFile(source + "/journal/" + name, to: directory + "/journal/" + name)
                } catch  where !isFile(source + "/journal/" + name) {
                    unlink(directory + "/journal/" + name)  // trimmed while listed: committed, in the databases
                }
            }
            // Opening the copy cuts a torn or zero-filled tail off and says how far it reaches.
            let copy = try FileJournal(
                configuration: .init(directory: directory + "/journal", durability: .fsync),
                logger: Logger(label: "iot.backup"))
            journalSequence = copy.lastSequence
            paths += try entries(directory + "/journal").sorted().map { "journal/" + $0 }
        }
        // 2. The databases, each a consistent snapshot.
        for path in try relativeFiles(source).filter({ $0.hasSuffix(".sqlite") }) {
            try makeDirectories(parent(of: directory + "/" + path))
            try snapshot(database: source + "/" + path, into: directory + "/" + path)
            paths.append(path)
        }
        // 3. Everything else (signing keys, …), but SQLite's own side files.
        for path in try relativeFiles(source) where !path.hasSuffix(".sqlite") && !path.hasPrefix("journal/") {
            guard !["-wal", "-shm", "-journal"].contains(where: { path.hasSuffix($0) }) else { continue }
            try makeDirectories(parent(of: directory + "/" + path))
            try copyFile(source + "/" + path, to: directory + "/" + path)
            paths.append(path)
        }
        var files: [Manifest.File] = []
        for path in paths.sorted() {
            let (bytes, digest) = try sha256(of: directory + "/" + path)
            files.append(Manifest.File(path: path, bytes: bytes, sha256: digest))
        }
        let manifest = Manifest(
            format: 1, version: version, createdAt: now, kind: "full", journalSequence: journalSequence, files: files)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(manifest) } catch {
            throw IoTError(.storage, "cannot encode the manifest: \(error)")
        }
        try write(data, to: directory + "/" + manifestName)
        return manifest
    }

    /// Checks a backup set: its manifest, every file's size and SHA-256, `PRAGMA integrity_check` on every
    /// database; counts each tenant's points.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming what is missing, truncated or corrupt.
    public static func verify(_ directory: String) throws(IoTError) -> Verification {
        let manifestPath = directory + "/" + manifestName
        guard isFile(manifestPath) else {
            throw IoTError(
                .invalidArgument,
                "\(directory) is not a complete backup set: it has no \(manifestName) (the backup did not finish, or this is not a backup)"
            )
        }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: try read(manifestPath))
        } catch {
            throw IoTError(.invalidArgument, "\(manifestPath) cannot be read: \(error); the set is damaged")
        }
        guard manifest.format == 1 else {
            throw IoTError(
                .invalidArgument,
                "\(manifestPath) has format \(manifest.format), newer than this release reads; upgrade")
        }
        var bytes = 0
        var points: [TenantID: Int] = [:]
        for file in manifest.files {
            let path = directory + "/" + file.path
            guard !file.path.contains(".."), isFile(path) else {
                throw IoTError(.invalidArgument, "the backup set lacks \(file.path), which its manifest lists")
            }
            let (size, digest) = try sha256(of: path)
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
            if file.path.hasSuffix(".sqlite") {
                let count = try check(database: path, name: file.path)
                if file.path.hasPrefix("tenants/") {
                    points[TenantID(String(file.path.dropFirst("tenants/".count).dropLast(".sqlite".count)))] = count
                }
            }
        }
        return Verification(manifest: manifest, bytes: bytes, points: points)
    }

    /// Restores a backup set into `dataDirectory`: verifies it first (nothing is written from a set that fails),
    /// copies it into a new directory beside the target and renames that into place.
    ///
    /// - Parameter force: replace a target that is not empty (its old contents are removed); without it such a
    ///   target is refused.
    /// - Throws: as ``verify(_:)``; ``IoTCore/IoTError/Code/conflict`` for a non-empty target without `force`.
    @discardableResult
    public static func restore(from directory: String, to dataDirectory: String, force: Bool) throws(IoTError)
        -> Verification
    {
        let target = dataDirectory.hasSuffix("/") ? String(dataDirectory.dropLast()) : dataDirectory
        let checked = try verify(directory)
        if isDirectory(target), !(try entries(target)).isEmpty, !force {
            throw IoTError(
                .conflict, "\(target) is not empty; restore into a new directory, or add --force to replace it")
        }
        let staging = target + ".restoring-\(getpid())"
        removeTree(staging)
        try makeDirectories(staging)
        for file in checked.manifest.files {
            try makeDirectories(parent(of: staging + "/" + file.path))
            try copyFile(directory + "/" + file.path, to: staging + "/" + file.path)
        }
        if isDirectory(target) { removeTree(target) }
        guard rename(staging, target) == 0 else {
            let reason = String(cString: strerror(errno))
            throw IoTError(
                .storage, "cannot move the restored files from \(staging) to \(target): \(reason)", nativeCode: errno,
                domain: .posix)
        }
        return checked
    }

    // MARK: - Databases

    /// `VACUUM INTO`: a consistent snapshot of a database that a running writer may be changing.
    private static func snapshot(database path: String, into target: String) throws(IoTError) {
        let connection = try SQLiteConnection(path: path)
        do {
            try connection.withLock {
                let s = try connection.statement("VACUUM INTO ?")
                s.bind(1, target)
                defer { s.reset() }
                _ = try s.step()
            }
        } catch {
            throw error as? IoTError ?? IoTError(.storage, "\(path): \(error)")
        }
        chmod(target, 0o600)
    }

    /// `PRAGMA integrity_check` and, for a tenant's database, its points; opened read-only, so the set is left
    /// as it is.
    private static func check(database path: String, name: String) throws(IoTError) -> Int {
        let connection = try SQLiteConnection(path: path, readOnly: true)
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

    // MARK: - Files

    private static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    private static func isFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// `path` made absolute and without `.`, `..` or repeated slashes (the path need not exist).
    private static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var parts: [Substring] = []
        for part in full.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    private static func entries(_ directory: String) throws(IoTError) -> [String] {
        guard let dir = opendir(directory) else {
            throw IoTError(
                .storage, "cannot list \(directory): \(String(cString: strerror(errno)))", nativeCode: errno,
                domain: .posix)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Every regular file below `root`, as paths relative to it, skipping directories named `*.restoring-*`.
    private static func relativeFiles(_ root: String, _ prefix: String = "") throws(IoTError) -> [String] {
        var result: [String] = []
        for name in try entries(root + (prefix.isEmpty ? "" : "/" + prefix)) {
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            let full = root + "/" + relative
            if isDirectory(full) {
                result += try relativeFiles(root, relative)
            } else if isFile(full) {
                result.append(relative)
            }
        }
        return result
    }

    /// Reads the file at `path` in chunks of 1 MiB, handing each to `body`.
    private static func forEachChunk(
        of path: String, _ body: (UnsafeRawBufferPointer) throws(IoTError) -> Void
    ) throws(IoTError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fileError("read", path) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw fileError("read", path) }
            if n == 0 { return }
            var failure: IoTError?
            buffer.withUnsafeBytes { raw in
                do throws(IoTError) { try body(UnsafeRawBufferPointer(rebasing: raw[..<n])) } catch { failure = error }
            }
            if let failure { throw failure }
        }
    }

    private static func copyFile(_ source: String, to target: String) throws(IoTError) {
        let output = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw fileError("write", target) }
        defer { close(output) }
        try forEachChunk(of: source) { (chunk) throws(IoTError) in
            var written = 0
            while written < chunk.count {
                let w = Glibc.write(output, chunk.baseAddress! + written, chunk.count - written)
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { throw fileError("write", target) }
                written += w
            }
        }
        guard fsync(output) == 0 else { throw fileError("write", target) }
    }

    private static func sha256(of path: String) throws(IoTError) -> (bytes: Int, hex: String) {
        var hasher = SHA256()
        var total = 0
        try forEachChunk(of: path) { chunk in
            hasher.update(bufferPointer: chunk)
            total += chunk.count
        }
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in hasher.finalize() { text += [hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]] }
        return (total, String(decoding: text, as: UTF8.self))
    }

    private static func read(_ path: String) throws(IoTError) -> Data {
        guard let data = FileManager.default.contents(atPath: path) else { throw fileError("read", path) }
        return data
    }

    /// Writes `data` to a temporary file beside `path`, syncs it, and renames it into place.
    private static func write(_ data: Data, to path: String) throws(IoTError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fileError("write", temporary) }
        let ok = data.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress, raw.count) == raw.count }
        let synced = fsync(fd) == 0
        close(fd)
        guard ok, synced, rename(temporary, path) == 0 else { throw fileError("write", path) }
    }

    private static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    private static func fileError(_ verb: String, _ path: String) -> IoTError {
        let code = errno
        return IoTError(
            .storage, "cannot \(verb) \(path): \(String(cString: strerror(code)))", nativeCode: code, domain: .posix)
    }
}
