public import IoTCore
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The default ``Journal``: append-only segment files with a CRC-32C per record.
///
/// A device is acknowledged once its message is appended here; the ``Ingestor`` then commits it to the
/// point store in batches and trims the journal behind the store's watermark. On start everything after
/// that watermark is replayed.
///
/// ```swift
/// let journal = try FileJournal(configuration: .init(directory: "/var/lib/iotd/journal", durability: .fsync))
/// let seq = try journal.append(tenant: "acme", points: [Point(device: "t-1", signal: "temp", time: now, value: .number(21.5))])
/// ```
///
/// Files: `<directory>/journal-<first sequence, 20 digits>.log`, each up to
/// ``Configuration/segmentBytes``, plus `trimmed`, the sequence below which replay need not look.
/// A record is `length u32 | crc32c u32 | payload`. A torn or corrupt tail (power loss mid-write) ends
/// the log there: it is cut off on open, and the records before it are intact.
///
/// With ``Durability/process`` the segment being written is memory-mapped (`MAP_SHARED`) and an append
/// is a copy into the operating system's page cache, the same place `write(2)` puts it, with no system
/// call: the file grows ahead of the records in steps of 1 MiB, allocated with `posix_fallocate` so a full
/// disk fails the append with a ``IoTCore/IoTError/Code/journal`` error (never a `SIGBUS`), and the
/// zeros after the last record are cut off when the segment is closed or reopened.
public final class FileJournal: BatchJournal {
    /// How durable an appended record is when ``append(tenant:points:)`` returns.
    public enum Durability: String, Sendable, Hashable, Codable {
        /// In the operating system's page cache (copied into the memory-mapped segment): survives a crash or
        /// `kill -9` of the process, not a power loss or kernel crash. Fast: no system call per append. Default.
        case process
        /// Written and `fdatasync(2)`ed: survives power loss. Each append waits for the disk.
        case fsync
    }

    /// Where the journal lives and how durable it is.
    public struct Configuration: Sendable {
        /// The directory of the segment files; created if missing. Default `./data/journal`.
        public var directory: String
        /// See ``Durability``. Default ``Durability/process``.
        public var durability: Durability
        /// A new segment starts once the current one reaches this size. Default 64 MiB.
        public var segmentBytes: Int
        /// Creates a configuration.
        public init(
            directory: String = "./data/journal", durability: Durability = .process, segmentBytes: Int = 64 << 20
        ) {
            self.directory = directory
            self.durability = durability
            self.segmentBytes = segmentBytes
        }
    }

    private struct Segment {
        var first: UInt64
        var path: String
    }

    /// The memory map of the segment being written (``Durability/process`` only).
    private struct Mapping {
        /// The start of the map: `length` bytes from the file's offset 0.
        var base: UnsafeMutableRawPointer
        /// The bytes mapped: the segment size rounded up to whole pages.
        var length: Int
        /// The file's size: space allocated for records, zeros after the last one. Only bytes below it are
        /// written through the map (a page past the end of the file would raise `SIGBUS`).
        var allocated: Int
        /// Bytes from the start whose pages were released from the process (``releaseBytes`` at a time):
        /// written records stay in the page cache, and the process's resident size does not grow with the segment.
        var released = 0
    }

    private struct State {
        var fd: Int32
        var size: Int
        var segments: [Segment]
        var last: UInt64
        var trimmed: UInt64
        var buffer: [UInt8] = []
        var map: Mapping?
        /// Set by ``hold(after:)``: segments holding records past it stay, trimmed or not.
        var held: UInt64?
    }

    /// The step in which a mapped segment's file grows.
    static let growthBytes = 1 << 20
    /// The step in which written pages of a mapped segment are released from the process (a multiple of pages).
    static let releaseBytes = 4 << 20

    /// The configuration in force.
    public let configuration: Configuration
    private let logger: Logger
    private let state: Mutex<State>

    /// Opens the journal, creating the directory and the first segment, and cutting off a torn tail.
    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "iot.journal"))
        throws(IoTError)
    {
        guard (4_096...(1 << 30)).contains(configuration.segmentBytes) else {
            throw IoTError(
                .invalidArgument,
                "journal segmentBytes is \(configuration.segmentBytes); use 4096 (4 KiB) to 1073741824 (1 GiB), e.g. 67108864"
            )
        }
        self.configuration = configuration
        self.logger = logger
        let dir = configuration.directory
        try makeDirectories(dir)
        let trimmed = Self.readTrimmed(dir)
        var segments = try Self.listSegments(dir)
        var last: UInt64
        var fd: Int32
        var size: Int
        if let tail = segments.last {
            let scan = try Self.scan(tail.path, validateFrom: tail.first)
            if !scan.zeroTail {
                logger.warning(
                    "journal: cutting off a torn tail",
                    metadata: ["segment": "\(tail.path)", "valid": "\(scan.validBytes)", "size": "\(scan.fileBytes)"])
            }
            fd = open(tail.path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw Self.errnoError("open \(tail.path)") }
            if scan.validBytes < scan.fileBytes { _ = ftruncate(fd, off_t(scan.validBytes)) }
            size = scan.validBytes
            last = scan.lastSequence ?? (tail.first - 1)
        } else {
            let first = trimmed + 1
            let path = Self.segmentPath(dir, first)
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Self.errnoError("create \(path)") }
            Self.syncDirectory(dir)
            segments = [Segment(first: first, path: path)]
            size = 0
            last = trimmed
        }
        let map = Self.map(fd, size: size, configuration)
        state = Mutex(
            State(fd: fd, size: size, segments: segments, last: max(last, trimmed), trimmed: trimmed, map: map))
    }

    deinit {
        state.withLock { s in
            Self.closeSegment(&s, configuration)
        }
    }

    public var lastSequence: UInt64 { state.withLock { $0.last } }

    public func append(tenant: TenantID, points: [Point]) throws(IoTError) -> UInt64 {
        try state.withLock { (s) throws(IoTError) -> UInt64 in
            let seq = s.last + 1
            s.buffer.removeAll(keepingCapacity: true)
            defer { Self.releaseLargeBuffer(&s) }
            try JournalCodec.encode(sequence: seq, tenant: tenant, points: points, appendingTo: &s.buffer)
            try appendFrames(s.buffer, first: seq, count: 1, to: &s)
            return seq
        }
    }

    public func append(batch entries: [(tenant: TenantID, points: [Point])]) throws(IoTError) -> UInt64 {
        try state.withLock { (s) throws(IoTError) -> UInt64 in
            let first = s.last + 1
            s.buffer.removeAll(keepingCapacity: true)
            defer { Self.releaseLargeBuffer(&s) }
            for (k, e) in entries.enumerated() {
                try JournalCodec.encode(
                    sequence: first + UInt64(k), tenant: e.tenant, points: e.points, appendingTo: &s.buffer)
            }
            try appendFrames(s.buffer, first: first, count: entries.count, to: &s)
            return first
        }
    }

    /// The encoding buffer is kept between appends (no allocation per append) unless a large entry grew it.
    private static func releaseLargeBuffer(_ s: inout State) {
        if s.buffer.capacity > 1 << 20 { s.buffer = [] }
    }

    /// Appends the encoded frames of `count` entries numbered from `first`, rolling the segment first
    /// when they would overflow it; durable as the policy promises, or not appended at all.
    private func appendFrames(_ frames: [UInt8], first: UInt64, count: Int, to s: inout State) throws(IoTError) {
        if s.size > 0 && s.size + frames.count > configuration.segmentBytes {
            try roll(&s, first: first)
        }
        if var map = s.map, s.size + frames.count <= map.length {
            // Into the page cache through the map; room is allocated first, so a full disk is an error here.
            let end = s.size + frames.count
            if end > map.allocated {
                var target = min(map.length, (end + Self.growthBytes - 1) / Self.growthBytes * Self.growthBytes)
                var rc = posix_fallocate(s.fd, off_t(map.allocated), off_t(target - map.allocated))
                if rc != 0 && target > end {
                    // Less than a step left on the disk: room for these records only.
                    target = end
                    rc = posix_fallocate(s.fd, off_t(map.allocated), off_t(target - map.allocated))
                }
                if rc != 0 {
                    errno = rc
                    throw Self.errnoError("allocate room in the journal")
                }
                map.allocated = target
                s.map = map
            }
            frames.withUnsafeBytes { (map.base + s.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            // Whole steps behind the records leave the process's pages (MADV_DONTNEED on a shared file map keeps
            // them, dirty, in the page cache, which writes them back): a mapped segment costs no resident memory.
            let written = end / Self.releaseBytes * Self.releaseBytes
            if written > map.released {
                _ = madvise(map.base + map.released, written - map.released, MADV_DONTNEED)
                map.released = written
                s.map = map
            }
        } else {
            try Self.writeAll(s.fd, frames, at: s.size, what: "append to the journal", map: &s.map)
        }
        if configuration.durability == .fsync && fdatasync(s.fd) != 0 {
            let error = Self.errnoError("fdatasync the journal")
            _ = ftruncate(s.fd, off_t(s.size))  // not durable: not appended
            throw error
        }
        s.size += frames.count
        s.last = first + UInt64(count) - 1
    }

    public func replay(after sequence: UInt64, _ body: (JournalEntry) throws -> Void) throws {
        let (segments, trimmed, last) = state.withLock { ($0.segments, $0.trimmed, $0.last) }
        let floor = max(sequence, trimmed)
        for (i, segment) in segments.enumerated() {
            let nextFirst = i + 1 < segments.count ? segments[i + 1].first : last + 1
            if nextFirst <= floor + 1 { continue }  // every entry in it is <= floor
            let bytes = try Self.readFile(segment.path)
            var stop = false
            try bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    guard let (entry, next) = Self.frame(raw, at: offset) else {
                        // Zeros to the end: room allocated ahead of the records (the segment being written).
                        if Self.isZero(raw, from: offset) { return }
                        logger.warning(
                            "journal: replay stops at a damaged record",
                            metadata: ["segment": "\(segment.path)", "offset": "\(offset)"])
                        stop = true
                        return
                    }
                    if entry.sequence > floor { try body(entry) }
                    offset = next
                }
            }
            if stop { break }
        }
    }

    public func trim(through sequence: UInt64) throws(IoTError) {
        let removable: [String] = state.withLock { s in
            guard sequence > s.trimmed else { return [] }
            s.trimmed = sequence
            s.last = max(s.last, sequence)
            return Self.removableSegments(&s)
        }
        for path in removable { unlink(path) }
        let trimmed = state.withLock { $0.trimmed }
        let tmp = configuration.directory + "/trimmed.tmp"
        let text = "\(trimmed)\n"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.errnoError("write \(tmp)") }
        defer { close(fd) }
        try Self.writeAll(fd, Array(text.utf8), at: 0, what: "write \(tmp)")
        if rename(tmp, configuration.directory + "/trimmed") != 0 { throw Self.errnoError("rename \(tmp)") }
    }

    /// Keeps every segment that holds a record past `sequence` on disk, even once trimmed, until a later call
    /// moves the hold on (``JournalShipper`` holds what it has not shipped yet); `nil` lifts the hold.
    ///
    /// Segments already past the hold and trimmed are removed by this call.
    public func hold(after sequence: UInt64?) {
        let removable: [String] = state.withLock { s in
            s.held = sequence
            return Self.removableSegments(&s)
        }
        for path in removable { unlink(path) }
    }

    /// The sequence below which every record is committed (the last ``trim(through:)``).
    public var trimmedSequence: UInt64 { state.withLock { $0.trimmed } }

    /// The segment files, oldest first, with the sequence each starts at.
    func segmentFiles() -> [(first: UInt64, path: String)] {
        state.withLock { $0.segments.map { ($0.first, $0.path) } }
    }

    /// Whole frames of `raw` from `offset` on: calls `body` with each frame's sequence and byte range, and
    /// returns the offset after the last whole, intact one (a torn or zero tail ends the scan).
    static func scanFrames(
        _ raw: UnsafeRawBufferPointer, from offset: Int, _ body: (UInt64, Range<Int>) throws -> Void
    ) rethrows -> Int {
        let h = JournalCodec.frameHeaderSize
        var offset = offset
        while offset + h + 8 <= raw.count {
            let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
            guard length >= 8, length <= JournalCodec.maxPayload, offset + h + length <= raw.count else { break }
            let payload = UnsafeRawBufferPointer(rebasing: raw[(offset + h)..<(offset + h + length)])
            guard CRC32C.checksum(payload) == crc else { break }
            try body(UInt64(littleEndian: payload.loadUnaligned(as: UInt64.self)), offset..<(offset + h + length))
            offset += h + length
        }
        return offset
    }

    // MARK: - Internals

    /// Takes the segments that only hold trimmed records (and none past the hold) off the list; the caller
    /// unlinks the paths returned. The segment being written always stays.
    private static func removableSegments(_ s: inout State) -> [String] {
        let floor = min(s.trimmed, s.held ?? .max)
        var paths: [String] = []
        while s.segments.count > 1 && s.segments[1].first - 1 <= floor {
            paths.append(s.segments.removeFirst().path)
        }
        return paths
    }

    private func roll(_ s: inout State, first: UInt64) throws(IoTError) {
        let path = Self.segmentPath(configuration.directory, first)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.errnoError("create \(path)") }
        if configuration.durability == .fsync { Self.syncDirectory(configuration.directory) }
        // The old segment loses its zeros before the new one gets a record: only the last segment can
        // end in zeros after a crash.
        Self.closeSegment(&s, configuration)
        s.fd = fd
        s.size = 0
        s.map = Self.map(fd, size: 0, configuration)
        s.segments.append(Segment(first: first, path: path))
    }

    /// Maps a segment whose records end at `size` (its file size) for ``Durability/process``; `nil` (appends
    /// use `pwrite`) for ``Durability/fsync`` or when the map cannot be made.
    private static func map(_ fd: Int32, size: Int, _ configuration: Configuration) -> Mapping? {
        guard configuration.durability == .process else { return nil }
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        let length = (max(configuration.segmentBytes, 1) + page - 1) / page * page
        guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            return nil
        }
        return Mapping(base: base, length: length, allocated: size)
    }

    /// Unmaps the segment being written, cuts the zeros after its last record, syncs it as the policy
    /// says and closes it.
    private static func closeSegment(_ s: inout State, _ configuration: Configuration) {
        if let map = s.map {
            munmap(map.base, map.length)
            s.map = nil
            if map.allocated > s.size { _ = ftruncate(s.fd, off_t(s.size)) }
        }
        if configuration.durability == .fsync { _ = fdatasync(s.fd) }
        close(s.fd)
    }

    /// Decodes the frame at `offset`: the entry and the offset after it, or `nil` if damaged or torn.
    private static func frame(_ raw: UnsafeRawBufferPointer, at offset: Int) -> (JournalEntry, Int)? {
        let h = JournalCodec.frameHeaderSize
        guard offset + h <= raw.count else { return nil }
        let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        guard length <= JournalCodec.maxPayload, offset + h + length <= raw.count else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: raw[(offset + h)..<(offset + h + length)])
        guard CRC32C.checksum(payload) == crc, let entry = JournalCodec.decode(payload) else { return nil }
        return (entry, offset + h + length)
    }

    private struct Scan {
        var validBytes: Int
        var fileBytes: Int
        var lastSequence: UInt64?
        /// Nothing but zeros after the last intact record (room allocated ahead of the records), or nothing.
        var zeroTail: Bool
    }

    /// Whether every byte of `raw` from `offset` on is zero.
    private static func isZero(_ raw: UnsafeRawBufferPointer, from offset: Int) -> Bool {
        raw[offset...].allSatisfy { $0 == 0 }
    }

    private static func scan(_ path: String, validateFrom first: UInt64) throws(IoTError) -> Scan {
        let bytes = try readFile(path)
        return bytes.withUnsafeBytes { raw in
            var offset = 0
            var last: UInt64?
            while offset < raw.count, let (entry, next) = frame(raw, at: offset) {
                last = entry.sequence
                offset = next
            }
            return Scan(
                validBytes: offset, fileBytes: raw.count, lastSequence: last, zeroTail: isZero(raw, from: offset))
        }
    }

    static func readFile(_ path: String) throws(IoTError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw errnoError("open \(path)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw errnoError("stat \(path)") }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw errnoError("read \(path)")
            }
            if n == 0 { break }
            done += n
        }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    /// Writes `bytes` at `offset`, the end of the segment's records. When a write fails part-way (disk
    /// full), the segment is cut back to `offset` bytes, so no torn frame sits before the entries appended
    /// later; a map then only writes below the new end of the file.
    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, what: String, map: inout Mapping?)
        throws(IoTError)
    {
        do {
            try writeAll(fd, bytes, at: offset, what: what)
            if var m = map, offset + bytes.count > m.allocated {
                m.allocated = offset + bytes.count
                map = m
            }
        } catch {
            _ = ftruncate(fd, off_t(offset))
            if var m = map {
                m.allocated = min(m.allocated, offset)
                map = m
            }
            throw error
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, what: String) throws(IoTError) {
        let failed: Bool = bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return true
                }
                done += n
            }
            return false
        }
        if failed { throw errnoError(what) }
    }

    private static func listSegments(_ dir: String) throws(IoTError) -> [Segment] {
        guard let d = opendir(dir) else { throw errnoError("list \(dir)") }
        defer { closedir(d) }
        var result: [Segment] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            guard name.hasPrefix("journal-"), name.hasSuffix(".log"),
                let first = UInt64(name.dropFirst("journal-".count).dropLast(".log".count))
            else { continue }
            result.append(Segment(first: first, path: dir + "/" + name))
        }
        return result.sorted { $0.first < $1.first }
    }

    static func segmentPath(_ dir: String, _ first: UInt64) -> String {
        let digits = String(first)
        return dir + "/journal-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".log"
    }

    static func readTrimmed(_ dir: String) -> UInt64 {
        guard let bytes = try? readFile(dir + "/trimmed") else { return 0 }
        return UInt64(String(decoding: bytes, as: UTF8.self).trimmingTrailingNewline) ?? 0
    }

    private static func syncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    private static func errnoError(_ what: String) -> IoTError {
        let code = errno
        return IoTError(
            .journal,
            "journal could not \(what): \(String(cString: strerror(code))); check the disk and the directory's permissions",
            nativeCode: code, domain: .posix)
    }
}

extension String {
    fileprivate var trimmingTrailingNewline: String {
        var s = self
        while s.last == "\n" || s.last == " " { s.removeLast() }
        return s
    }
}

extension FileJournal.Configuration: Decodable {
    private enum CodingKeys: String, CodingKey { case durability, segmentBytes }

    /// Reads `durability` and `segmentBytes` (`journal:` in iotd.yaml). The directory is not read: whoever
    /// owns the data folder sets it (iotd: `<dataDirectory>/journal`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            directory: d.directory, durability: try c.decode(.durability, or: d.durability),
            segmentBytes: try c.decode(.segmentBytes, or: d.segmentBytes))
    }

    /// Checks `segmentBytes` (4 KiB to 1 GiB).
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
    public func validate() throws(IoTError) {
        try IoTLimits.checkSetting(segmentBytes, "segmentBytes", in: 4_096...(1 << 30), unit: "bytes")
    }
}
