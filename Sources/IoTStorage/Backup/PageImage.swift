import Crypto
import IoTCore

#if canImport(Glibc)
    import Glibc
#endif

/// A database's pages in a backup set: a snapshot taken page for page (SQLite's online backup API), a digest
/// per page so the next set can tell which pages changed, and the delta of those pages.
///
/// - `<path>.pages`: 16 bytes of SHA-256 per page of the image, in page order (every set has it, so an
///   incremental set compares with its parent only).
/// - `<path>.delta`: `IOTPAGE1 | page size u32 | pages u32`, then each changed page as `number u32 | bytes`
///   (numbers from 1); applied over the parent's image and cut to `pages`.
enum PageImage {
    static let digestBytes = 16
    static let deltaMagic = Array("IOTPAGE1".utf8)

    /// What a snapshot is: its page size and count, every page's digest, and the SHA-256 of the whole file.
    struct Summary {
        var pageSize: Int
        var pages: Int
        var digests: [UInt8]
        var sha256: String
    }

    /// Snapshots the database at `database` into the new file `target`, page for page.
    static func snapshot(database: String, into target: String) throws(IoTError) {
        let connection = try SQLiteConnection(path: database)
        defer { connection.withLock { connection.close() } }
        do {
            try connection.withLock { try connection.backup(to: target) }
        } catch {
            throw error as? IoTError ?? IoTError(.storage, "\(database): \(error)")
        }
        chmod(target, 0o600)
    }

    /// Reads the snapshot at `path`: its page size (from the header), pages, digests and SHA-256.
    static func summarize(_ path: String) throws(IoTError) -> Summary {
        var hasher = SHA256()
        var digests: [UInt8] = []
        var pageSize = 0
        var total = 0
        var carry: [UInt8] = []
        try BackupFile.forEachChunk(of: path) { (chunk) throws(IoTError) in
            hasher.update(bufferPointer: chunk)
            total += chunk.count
            carry.append(contentsOf: chunk)
            if pageSize == 0 {
                guard carry.count >= 100 else { return }
                pageSize = Self.pageSize(header: carry)
                guard pageSize > 0 else { throw IoTError(.storage, "\(path) is not an SQLite database") }
            }
            var start = 0
            while carry.count - start >= pageSize {
                digests += SHA256.hash(data: carry[start..<(start + pageSize)]).prefix(digestBytes)
                start += pageSize
            }
            carry.removeFirst(start)
        }
        guard pageSize > 0, carry.isEmpty else {
            throw IoTError(.storage, "\(path) is not a whole SQLite database (\(total) bytes)")
        }
        return Summary(
            pageSize: pageSize, pages: total / pageSize, digests: digests, sha256: BackupFile.hex(hasher.finalize()))
    }

    /// The page size recorded at offset 16 of an SQLite header (1 means 65,536), or 0 if it is not one.
    static func pageSize(header: [UInt8]) -> Int {
        guard header.count >= 100, header.starts(with: Array("SQLite format 3\0".utf8)) else { return 0 }
        let raw = Int(header[16]) << 8 | Int(header[17])
        return raw == 1 ? 65_536 : raw
    }

    /// Writes into `writer` the pages of the snapshot at `path` whose digests differ from `parent`'s (or that
    /// it lacks); returns how many.
    static func writeDelta(
        of path: String, summary: Summary, against parent: [UInt8], into writer: BackupFile.Writer
    ) throws(IoTError) -> Int {
        var header = deltaMagic
        withUnsafeBytes(of: UInt32(summary.pageSize).littleEndian) { header += $0 }
        withUnsafeBytes(of: UInt32(summary.pages).littleEndian) { header += $0 }
        try writer.write(header)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BackupFile.fileError("read", path) }
        defer { close(fd) }
        var page = [UInt8](repeating: 0, count: 4 + summary.pageSize)
        var changed = 0
        for index in 0..<summary.pages {
            let range = (index * digestBytes)..<((index + 1) * digestBytes)
            if range.upperBound <= parent.count && parent[range] == summary.digests[range] { continue }
            let n = page.withUnsafeMutableBytes { raw in
                withUnsafeBytes(of: UInt32(index + 1).littleEndian) { raw.copyMemory(from: $0) }
                return pread(fd, raw.baseAddress! + 4, summary.pageSize, off_t(index * summary.pageSize))
            }
            guard n == summary.pageSize else { throw BackupFile.fileError("read", path) }
            try writer.write(page)
            changed += 1
        }
        return changed
    }

    /// Applies the delta `relative` of the set at `directory` to the image at `target`, then cuts the image to the
    /// delta's page count.
    static func applyDelta(
        in directory: String, _ relative: String, key: BackupKey?, to target: String
    ) throws(IoTError) {
        let fd = open(target, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BackupFile.fileError("write", target) }
        defer { close(fd) }
        var buffer: [UInt8] = []
        var pageSize = 0
        var pages = 0
        try BackupFile.forEachPlainChunk(in: directory, relative, key: key) { (chunk) throws(IoTError) in
            buffer.append(contentsOf: chunk)
            if pageSize == 0 {
                guard buffer.count >= 16 else { return }
                guard buffer.starts(with: deltaMagic) else {
                    throw IoTError(.invalidArgument, "\(relative) is not a page delta; the set is damaged")
                }
                pageSize = Int(
                    UInt32(
                        littleEndian: buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self) }))
                pages = Int(
                    UInt32(
                        littleEndian: buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self) }))
                buffer.removeFirst(16)
                guard pageSize >= 512 else { throw IoTError(.invalidArgument, "\(relative) has a bad page size") }
            }
            let record = 4 + pageSize
            var start = 0
            while buffer.count - start >= record {
                let number = buffer.withUnsafeBytes {
                    Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: UInt32.self)))
                }
                guard (1...max(pages, 1)).contains(number) else {
                    throw IoTError(.invalidArgument, "\(relative) names page \(number) of \(pages); the set is damaged")
                }
                let written = buffer.withUnsafeBytes { raw in
                    pwrite(fd, raw.baseAddress! + start + 4, pageSize, off_t((number - 1) * pageSize))
                }
                guard written == pageSize else { throw BackupFile.fileError("write", target) }
                start += record
            }
            buffer.removeFirst(start)
        }
        guard pageSize > 0, buffer.isEmpty else {
            throw IoTError(.invalidArgument, "\(relative) is cut short; the set is damaged")
        }
        guard ftruncate(fd, off_t(pages * pageSize)) == 0, fsync(fd) == 0 else {
            throw BackupFile.fileError("write", target)
        }
    }
}
