public import IoTCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Continuous backup: copies the records the ``FileJournal`` acknowledged since the last call into a backup
/// repository (`shipped/` beside the sets of ``DataBackup``), so a restore recovers everything acknowledged up
/// to the last shipment, not only up to the last set.
///
/// Each ``ship()`` writes one file, `shipped/<first>-<last>.frames` (the journal's own frames, sealed when a
/// ``BackupKey`` is given), then appends a line to `shipped/index`: first and last sequence, the time the
/// shipment began (every record acknowledged before it is in it), records, bytes, SHA-256 and key. The
/// journal keeps every segment holding records not yet shipped, even once committed (``FileJournal/hold(after:)``).
///
/// ```swift
/// let shipper = try JournalShipper(journal: journal, repository: "/backup/iotd")
/// // every few seconds:
/// try shipper.ship()
/// ```
public final class JournalShipper: Sendable {
    /// One shipment, as `shipped/index` records it.
    public struct Shipment: Sendable, Hashable {
        /// The first and last journal sequence it holds.
        public var first: UInt64
        /// The last journal sequence it holds.
        public var last: UInt64
        /// When it began, in milliseconds since 1970: every record acknowledged before is in it or an earlier one.
        public var at: Int64
        /// Its records.
        public var records: Int
        /// Its file's size as stored.
        public var bytes: Int
        /// Its file's SHA-256 as stored.
        public var sha256: String
        /// The ``BackupKey/id`` that sealed it, or `-`.
        public var keyID: String

        var fileName: String { Self.padded(first) + "-" + Self.padded(last) + ".frames" }

        var line: String { "\(first) \(last) \(at) \(records) \(bytes) \(sha256) \(keyID)" }

        init(first: UInt64, last: UInt64, at: Int64, records: Int, bytes: Int, sha256: String, keyID: String) {
            (self.first, self.last, self.at, self.records) = (first, last, at, records)
            (self.bytes, self.sha256, self.keyID) = (bytes, sha256, keyID)
        }

        init?(line: Substring) {
            let f = line.split(separator: " ")
            guard f.count == 7, let first = UInt64(f[0]), let last = UInt64(f[1]), let at = Int64(f[2]),
                let records = Int(f[3]), let bytes = Int(f[4])
            else { return nil }
            self.init(
                first: first, last: last, at: at, records: records, bytes: bytes, sha256: String(f[5]),
                keyID: String(f[6]))
        }

        private static func padded(_ n: UInt64) -> String {
            let digits = String(n)
            return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
        }
    }

    private struct State {
        var last: UInt64
        /// Where the next scan starts: a segment's first sequence and a byte offset in it.
        var cursor: (segment: UInt64, offset: Int)?
    }

    private let journal: FileJournal
    private let repository: String
    private let key: BackupKey?
    private let state: Mutex<State>

    /// Ships `journal` into `repository` (created if missing), continuing after its last shipment; from now on
    /// the journal keeps what is not shipped yet.
    public init(journal: FileJournal, repository: String, key: BackupKey? = nil) throws(IoTError) {
        try makeDirectories(repository + "/" + DataBackup.shippedFolder)
        let last = try Self.index(of: repository).last?.last ?? 0
        self.journal = journal
        self.repository = repository
        self.key = key
        state = Mutex(State(last: last))
        journal.hold(after: last)
    }

    /// The last sequence shipped.
    public var lastShipped: UInt64 { state.withLock { $0.last } }

    /// Copies the records appended since the last shipment into the repository; `nil` when there were none.
    @discardableResult
    public func ship() throws(IoTError) -> Shipment? {
        let at = SystemClock().now()
        var (last, cursor) = state.withLock { ($0.last, $0.cursor) }
        let segments = journal.segmentFiles()
        var frames: [UInt8] = []
        var first: UInt64?
        var records = 0
        for (i, segment) in segments.enumerated() {
            if i + 1 < segments.count, segments[i + 1].first <= last + 1 { continue }  // all shipped
            let start = cursor?.segment == segment.first ? cursor!.offset : 0
            let bytes = try Self.read(segment.path, from: start)
            let end = bytes.withUnsafeBytes { raw in
                FileJournal.scanFrames(raw, from: 0) { sequence, range in
                    guard sequence > last else { return }
                    if first == nil { first = sequence }
                    frames.append(contentsOf: raw[range])
                    last = sequence
                    records += 1
                }
            }
            cursor = (segment.first, start + end)
        }
        guard let first else {
            state.withLock { $0.cursor = cursor }
            return nil
        }
        let folder = repository + "/" + DataBackup.shippedFolder
        let name = Shipment(first: first, last: last, at: at, records: 0, bytes: 0, sha256: "", keyID: "").fileName
        let writer = try BackupFile.Writer(directory: folder, relative: name, key: key)
        try writer.write(frames)
        let file = try writer.finish()
        BackupFile.syncDirectory(folder)
        let shipment = Shipment(
            first: first, last: last, at: at, records: records, bytes: file.bytes, sha256: file.sha256,
            keyID: key?.id ?? "-")
        try BackupFile.append(line: shipment.line, to: folder + "/index")
        state.withLock {
            $0.last = last
            $0.cursor = cursor
        }
        journal.hold(after: last)
        return shipment
    }

    /// The shipments of `repository`, in order.
    public static func index(of repository: String) throws(IoTError) -> [Shipment] {
        let path = repository + "/" + DataBackup.shippedFolder + "/index"
        guard BackupFile.isFile(path) else { return [] }
        let text = String(decoding: try BackupFile.read(path), as: UTF8.self)
        // A line cut by a crash mid-append is not a shipment (its file is there, its line is not whole).
        return text.split(separator: "\n").compactMap { Shipment(line: $0) }
    }

    /// Removes the shipments whose records are all at or below `sequence` (committed in every set kept).
    static func prune(repository: String, through sequence: UInt64) throws(IoTError) {
        let all = try index(of: repository)
        let folder = repository + "/" + DataBackup.shippedFolder
        let kept = all.filter { $0.last > sequence }
        guard kept.count < all.count else { return }
        try BackupFile.write(Array(kept.map { $0.line + "\n" }.joined().utf8), to: folder + "/index")
        for shipment in all where shipment.last <= sequence { unlink(folder + "/" + shipment.fileName) }
    }

    /// Writes into `directory` (a new journal folder) one segment holding the records past what the set's
    /// databases committed: the set's own journal, then the repository's shipments, cut at the last shipment
    /// begun by `at`.
    static func assemble(
        set: String, manifest: DataBackup.Manifest, repository: String, key: BackupKey?, at: Int64?,
        into directory: String
    ) throws(IoTError) -> (records: Int, through: UInt64, shipped: Int, gaps: [ClosedRange<UInt64>]) {
        let floor = manifest.journalTrimmed ?? 0
        let shipments = try index(of: repository)
        var cut = UInt64.max
        if let at { cut = max(manifest.journalSequence, shipments.last { $0.at <= at }?.last ?? 0) }
        var output: [UInt8] = []
        var written = floor
        var first: UInt64?
        var records = 0
        var shipped = 0
        var gaps: [ClosedRange<UInt64>] = []
        func take(_ bytes: [UInt8], fromShipment: Bool) {
            bytes.withUnsafeBytes { raw in
                _ = FileJournal.scanFrames(raw, from: 0) { sequence, range in
                    guard sequence > written, sequence <= cut else { return }
                    if sequence > written + 1, first != nil || floor > 0 { gaps.append((written + 1)...(sequence - 1)) }
                    if first == nil { first = sequence }
                    output.append(contentsOf: raw[range])
                    written = sequence
                    records += 1
                    if fromShipment { shipped += 1 }
                }
            }
        }
        let sealed = manifest.encryption == nil ? nil : key
        for file in manifest.files.map(\.path).sorted() where file.hasPrefix("journal/journal-") {
            take(try BackupFile.readPlain(in: set, file, key: sealed), fromShipment: false)
        }
        if manifest.format < 2, BackupFile.isDirectory(set + "/journal") {
            // A format-1 set lists its journal files at its top, as the data directory had them.
            for name in try BackupFile.entries(set + "/journal").sorted()
            where name.hasPrefix("journal-") && !manifest.files.isEmpty {
                take(try BackupFile.readPlain(in: set, "journal/" + name, key: nil), fromShipment: false)
            }
        }
        let folder = repository + "/" + DataBackup.shippedFolder
        for shipment in shipments where shipment.last > written && shipment.first <= cut {
            let path = folder + "/" + shipment.fileName
            let (bytes, digest) = try BackupFile.sha256(of: path)
            guard bytes == shipment.bytes, digest == shipment.sha256 else {
                throw IoTError(
                    .invalidArgument,
                    "shipment \(shipment.fileName) differs from its index line (size or SHA-256); the repository is damaged"
                )
            }
            var shipmentKey: BackupKey?
            if shipment.keyID != "-" {
                guard let key, key.id == shipment.keyID else {
                    throw IoTError(
                        .invalidArgument,
                        "shipment \(shipment.fileName) is sealed with key \(shipment.keyID); give that key (--key-file)"
                    )
                }
                shipmentKey = key
            }
            take(try BackupFile.readPlain(in: folder, shipment.fileName, key: shipmentKey), fromShipment: true)
        }
        try makeDirectories(directory)
        try BackupFile.write(Array("\(floor)\n".utf8), to: directory + "/trimmed")
        if let first {
            try BackupFile.write(output, to: FileJournal.segmentPath(directory, first))
        }
        return (records, written, shipped, gaps)
    }

    private static func read(_ path: String, from offset: Int) throws(IoTError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BackupFile.fileError("read", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BackupFile.fileError("read", path) }
        let size = max(0, Int(st.st_size) - offset)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress! + done, size - done, off_t(offset + done))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        bytes.removeLast(size - done)
        return bytes
    }
}
