import IoTCore

/// The binary form of a journal entry's payload (little-endian):
///
/// ```
/// sequence u64 | tenant str16 | pointCount u32 | points…
/// point: device str16 | signal str16 | time i64 | kind u8 (0 number, 1 text, 2 bool) | value
/// value: number f64 bits u64 | text str32 | bool u8
/// str16/str32: byte length u16/u32, then UTF-8 bytes
/// ```
///
/// On disk each entry is framed as `length u32 | crc32c u32 | payload` (CRC over the payload).
enum JournalCodec {
    static let frameHeaderSize = 8
    static let maxPayload = 64 << 20

    /// Appends one framed entry to `out` (several entries of a batch go to one buffer, written at once). On a
    /// throw, `out` is left as it was.
    static func encode(sequence: UInt64, tenant: TenantID, points: [Point], appendingTo out: inout [UInt8])
        throws(IoTError)
    {
        let start = out.count
        do throws(IoTError) {
            try encodeFrame(sequence: sequence, tenant: tenant, points: points, at: start, &out)
        } catch {
            out.removeSubrange(start...)
            throw error
        }
    }

    private static func encodeFrame(
        sequence: UInt64, tenant: TenantID, points: [Point], at start: Int, _ out: inout [UInt8]
    ) throws(IoTError) {
        out.append(contentsOf: repeatElement(0, count: frameHeaderSize))
        put64(sequence, &out)
        try putString16(tenant.rawValue, &out)
        put32(UInt32(points.count), &out)
        for p in points {
            try putString16(p.device, &out)
            try putString16(p.signal, &out)
            put64(UInt64(bitPattern: p.time), &out)
            switch p.value {
            case .number(let v):
                out.append(0)
                put64(v.bitPattern, &out)
            case .text(let s):
                out.append(1)
                let n = s.utf8.count
                guard n <= maxPayload else {
                    throw IoTError(
                        .invalidValue, "text value of \(p.signal) is \(n) bytes, over the journal's 64 MiB limit")
                }
                put32(UInt32(n), &out)
                out.append(contentsOf: s.utf8)
            case .bool(let b):
                out.append(2)
                out.append(b ? 1 : 0)
            }
        }
        let payloadCount = out.count - start - frameHeaderSize
        guard payloadCount <= maxPayload else {
            throw IoTError(
                .payloadTooLarge,
                "journal entry of \(payloadCount) bytes exceeds the 64 MiB limit; send smaller messages")
        }
        let crc = out.withUnsafeBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + frameHeaderSize)...]))
        }
        out.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(payloadCount).littleEndian, toByteOffset: start, as: UInt32.self)
            raw.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    /// Decodes one payload; `nil` when it is not well-formed.
    static func decode(_ b: UnsafeRawBufferPointer) -> JournalEntry? {
        var r = Reader(bytes: b)
        guard let seq = r.u64(), let tenant = r.string16(), let count = r.u32() else { return nil }
        var points: [Point] = []
        points.reserveCapacity(Int(min(count, 1 << 16)))
        for _ in 0..<count {
            guard let device = r.string16(), let signal = r.string16(), let time = r.u64(), let kind = r.u8() else {
                return nil
            }
            let value: SignalValue
            switch kind {
            case 0:
                guard let bits = r.u64() else { return nil }
                value = .number(Double(bitPattern: bits))
            case 1:
                guard let n = r.u32(), let s = r.string(Int(n)) else { return nil }
                value = .text(s)
            case 2:
                guard let v = r.u8() else { return nil }
                value = .bool(v != 0)
            default: return nil
            }
            points.append(Point(device: device, signal: signal, time: Int64(bitPattern: time), value: value))
        }
        guard r.offset == b.count else { return nil }
        return JournalEntry(sequence: seq, tenant: TenantID(tenant), points: points)
    }

    private static func put64(_ v: UInt64, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
    private static func put32(_ v: UInt32, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
    private static func putString16(_ s: String, _ out: inout [UInt8]) throws(IoTError) {
        let n = s.utf8.count
        guard n <= Int(UInt16.max) else {
            throw IoTError(
                .invalidArgument, "name of \(n) bytes is too long for the journal (65,535 at most): \(s.prefix(40))…")
        }
        withUnsafeBytes(of: UInt16(n).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: s.utf8)
    }

    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        mutating func u8() -> UInt8? {
            guard offset + 1 <= bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func u32() -> UInt32? {
            guard offset + 4 <= bytes.count else { return nil }
            defer { offset += 4 }
            return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }
        mutating func u64() -> UInt64? {
            guard offset + 8 <= bytes.count else { return nil }
            defer { offset += 8 }
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        mutating func string16() -> String? {
            guard offset + 2 <= bytes.count else { return nil }
            let n = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            offset += 2
            return string(n)
        }
        mutating func string(_ n: Int) -> String? {
            guard n >= 0, offset + n <= bytes.count else { return nil }
            defer { offset += n }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), as: UTF8.self)
        }
    }
}
