import Crypto
import IoTCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#endif

/// The file work of backups: listing, copying, hashing, and the stored form of a file in a set, plain or sealed
/// with AES-256-GCM.
///
/// A sealed file is `IOTAEAD1 | chunk size u32 LE`, then chunks of up to that many plaintext bytes, each
/// `nonce (12) | ciphertext | tag (16)`, the last one shorter (possibly empty). Each chunk is authenticated with
/// the file's path in the set, its index and whether it is the last, so chunks cannot be swapped, moved to
/// another file or cut off unnoticed.
enum BackupFile {
    static let chunkBytes = 1 << 20
    static let sealedMagic = Array("IOTAEAD1".utf8)

    // MARK: - Writing a file into a set

    /// Writes one file of a set: its bytes go through ``write(_:)`` and are sealed when a key is given;
    /// ``finish()`` syncs it and gives its size and SHA-256 as stored.
    final class Writer {
        private let fd: Int32
        private let path: String
        private let relative: String
        private let key: BackupKey?
        private var pending: [UInt8] = []
        private var chunkIndex: UInt64 = 0
        private var hasher = SHA256()
        private var bytes = 0

        /// Creates `directory/relative` (and its folders).
        init(directory: String, relative: String, key: BackupKey?) throws(IoTError) {
            path = directory + "/" + relative
            try makeDirectories(parent(of: path))
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw fileError("write", path) }
            self.relative = relative
            self.key = key
            if key != nil {
                var header = sealedMagic
                withUnsafeBytes(of: UInt32(chunkBytes).littleEndian) { header += $0 }
                do throws(IoTError) { try emit(header) } catch {
                    close(fd)
                    throw error
                }
            }
        }

        deinit { if fd >= 0 { close(fd) } }

        func write(_ data: UnsafeRawBufferPointer) throws(IoTError) {
            guard key != nil else { return try emit(data) }
            var rest = data
            while !rest.isEmpty {
                let n = min(rest.count, chunkBytes - pending.count)
                pending.append(contentsOf: rest.prefix(n))
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
                if pending.count == chunkBytes { try seal(last: false) }
            }
        }

        func write(_ data: [UInt8]) throws(IoTError) {
            var failure: IoTError?
            data.withUnsafeBytes { raw in
                do throws(IoTError) { try write(raw) } catch { failure = error }
            }
            if let failure { throw failure }
        }

        /// Seals the last chunk, syncs the file and gives its entry for the manifest.
        func finish() throws(IoTError) -> DataBackup.Manifest.File {
            if key != nil { try seal(last: true) }
            guard fsync(fd) == 0 else { throw fileError("write", path) }
            return DataBackup.Manifest.File(path: relative, bytes: bytes, sha256: hex(hasher.finalize()))
        }

        private func seal(last: Bool) throws(IoTError) {
            guard let key else { return }
            do {
                let box = try AES.GCM.seal(
                    pending, using: key.key, authenticating: chunkLabel(relative, chunkIndex, last: last))
                try emit(Array(box.nonce) + box.ciphertext + box.tag)
            } catch let error as IoTError {
                throw error
            } catch {
                throw IoTError(.storage, "cannot encrypt \(relative): \(error)")
            }
            chunkIndex += 1
            pending.removeAll(keepingCapacity: true)
        }

        private func emit(_ data: [UInt8]) throws(IoTError) {
            var failure: IoTError?
            data.withUnsafeBytes { raw in
                do throws(IoTError) { try emit(raw) } catch { failure = error }
            }
            if let failure { throw failure }
        }

        private func emit(_ data: UnsafeRawBufferPointer) throws(IoTError) {
            hasher.update(bufferPointer: data)
            bytes += data.count
            var written = 0
            while written < data.count {
                let w = Glibc.write(fd, data.baseAddress! + written, data.count - written)
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { throw fileError("write", path) }
                written += w
            }
        }
    }

    /// Stores the file at `source` as `relative` in the set at `directory`.
    static func store(
        _ source: String, in directory: String, as relative: String, key: BackupKey?
    ) throws(IoTError) -> DataBackup.Manifest.File {
        let writer = try Writer(directory: directory, relative: relative, key: key)
        try forEachChunk(of: source) { (chunk) throws(IoTError) in try writer.write(chunk) }
        return try writer.finish()
    }

    // MARK: - Reading a file of a set

    /// Reads the file `relative` of the set at `directory` as it was written (opening each sealed chunk), handing
    /// the plaintext to `body` in chunks.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` when a sealed chunk does not open (another key, or
    ///   the file was changed or cut).
    static func forEachPlainChunk(
        in directory: String, _ relative: String, key: BackupKey?,
        _ body: (UnsafeRawBufferPointer) throws(IoTError) -> Void
    ) throws(IoTError) {
        let path = directory + "/" + relative
        guard let key else { return try forEachChunk(of: path, body) }
        let sealed = 12 + chunkBytes + 16
        var buffer: [UInt8] = []
        var index: UInt64 = 0
        var header = true
        var sawLast = false
        func open(_ box: ArraySlice<UInt8>, last: Bool) throws(IoTError) {
            guard !sawLast else { throw damaged(relative, "has bytes after its last chunk") }
            do {
                let plain = try AES.GCM.open(
                    AES.GCM.SealedBox(combined: box), using: key.key,
                    authenticating: chunkLabel(relative, index, last: last))
                try plain.withUnsafeBytes { raw in try body(raw) }
            } catch let error as IoTError {
                throw error
            } catch {
                throw damaged(relative, "does not decrypt with this key (another key, or the file was changed)")
            }
            index += 1
            sawLast = last
        }
        try forEachChunk(of: path) { (chunk) throws(IoTError) in
            buffer.append(contentsOf: chunk)
            if header {
                guard buffer.count >= 12 else { return }
                guard Array(buffer[0..<8]) == sealedMagic else { throw damaged(relative, "is not sealed") }
                buffer.removeFirst(12)
                header = false
            }
            // Keep one chunk back: whether it is the last one is known only at the end of the file.
            while buffer.count > sealed {
                try open(buffer[0..<sealed], last: false)
                buffer.removeFirst(sealed)
            }
        }
        guard !header, buffer.count >= 28 else { throw damaged(relative, "is cut short") }
        try open(buffer[...], last: true)
    }

    /// The whole plaintext of a (small) file of a set.
    static func readPlain(in directory: String, _ relative: String, key: BackupKey?) throws(IoTError) -> [UInt8] {
        var bytes: [UInt8] = []
        try forEachPlainChunk(in: directory, relative, key: key) { bytes.append(contentsOf: $0) }
        return bytes
    }

    private static func chunkLabel(_ relative: String, _ index: UInt64, last: Bool) -> [UInt8] {
        var label = Array(relative.utf8)
        withUnsafeBytes(of: index.littleEndian) { label += $0 }
        label.append(last ? 1 : 0)
        return label
    }

    private static func damaged(_ relative: String, _ what: String) -> IoTError {
        IoTError(.invalidArgument, "\(relative) \(what); the set is damaged or needs its own key")
    }

    // MARK: - Files

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func isFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// `path` made absolute and without `.`, `..` or repeated slashes (the path need not exist).
    static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var parts: [Substring] = []
        for part in full.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    static func entries(_ directory: String) throws(IoTError) -> [String] {
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

    /// Every regular file below `root`, as paths relative to it.
    static func relativeFiles(_ root: String, _ prefix: String = "") throws(IoTError) -> [String] {
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
    static func forEachChunk(
        of path: String, _ body: (UnsafeRawBufferPointer) throws(IoTError) -> Void
    ) throws(IoTError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fileError("read", path) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: chunkBytes)
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

    /// Copies the plain file at `source` to `target`.
    static func copyFile(_ source: String, to target: String) throws(IoTError) {
        _ = try store(source, in: parent(of: target), as: name(of: target), key: nil)
    }

    /// Writes the plaintext of the file `relative` of the set at `directory` to `target`; returns what was
    /// written (its size and SHA-256).
    static func restore(
        _ relative: String, of directory: String, key: BackupKey?, to target: String
    ) throws(IoTError) -> DataBackup.Manifest.File {
        let output = try Writer(directory: parent(of: target), relative: name(of: target), key: nil)
        try forEachPlainChunk(in: directory, relative, key: key) { (chunk) throws(IoTError) in
            try output.write(chunk)
        }
        return try output.finish()
    }

    private static func name(of path: String) -> String {
        String(path.split(separator: "/").last ?? Substring(path))
    }

    /// The size and SHA-256 of the file at `path`.
    static func sha256(of path: String) throws(IoTError) -> (bytes: Int, hex: String) {
        var hasher = SHA256()
        var total = 0
        try forEachChunk(of: path) { chunk in
            hasher.update(bufferPointer: chunk)
            total += chunk.count
        }
        return (total, hex(hasher.finalize()))
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in digest { text += [digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]] }
        return String(decoding: text, as: UTF8.self)
    }

    static func unhex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    static func read(_ path: String) throws(IoTError) -> Data {
        guard let data = FileManager.default.contents(atPath: path) else { throw fileError("read", path) }
        return data
    }

    /// Writes `data` to a temporary file beside `path`, syncs it, and renames it into place.
    static func write(_ data: [UInt8], to path: String) throws(IoTError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fileError("write", temporary) }
        let ok = data.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress, raw.count) == raw.count }
        let synced = fsync(fd) == 0
        close(fd)
        guard ok, synced, rename(temporary, path) == 0 else { throw fileError("write", path) }
    }

    /// Appends `line` to the file at `path` and syncs it.
    static func append(line: String, to path: String) throws(IoTError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fileError("write", path) }
        defer { close(fd) }
        let bytes = Array((line + "\n").utf8)
        let ok = bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress, raw.count) == raw.count }
        guard ok, fsync(fd) == 0 else { throw fileError("write", path) }
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    static func fileError(_ verb: String, _ path: String) -> IoTError {
        let code = errno
        return IoTError(
            .storage, "cannot \(verb) \(path): \(String(cString: strerror(code)))", nativeCode: code, domain: .posix)
    }
}
