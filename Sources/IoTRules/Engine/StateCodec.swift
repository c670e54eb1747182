/// A compact little-endian binary encoding for rule state blobs: no Foundation, no JSON.
struct StateWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    mutating func i64(_ v: Int64) {
        var x = UInt64(bitPattern: v)
        for _ in 0..<8 {
            bytes.append(UInt8(truncatingIfNeeded: x))
            x >>= 8
        }
    }
    mutating func int(_ v: Int) { i64(Int64(v)) }
    mutating func f64(_ v: Double) { i64(Int64(bitPattern: v.bitPattern)) }
    mutating func optI64(_ v: Int64?) {
        bool(v != nil)
        if let v { i64(v) }
    }
    mutating func optF64(_ v: Double?) {
        bool(v != nil)
        if let v { f64(v) }
    }
    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        int(u.count)
        bytes.append(contentsOf: u)
    }
}

/// Reads what ``StateWriter`` wrote; throws on truncated or malformed input.
struct StateReader {
    struct Malformed: Error {}
    let bytes: [UInt8]
    var at = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { at >= bytes.count }

    mutating func u8() throws(Malformed) -> UInt8 {
        guard at < bytes.count else { throw Malformed() }
        defer { at += 1 }
        return bytes[at]
    }
    mutating func bool() throws(Malformed) -> Bool { try u8() != 0 }
    mutating func i64() throws(Malformed) -> Int64 {
        guard at + 8 <= bytes.count else { throw Malformed() }
        var x: UInt64 = 0
        for i in (0..<8).reversed() { x = x << 8 | UInt64(bytes[at + i]) }
        at += 8
        return Int64(bitPattern: x)
    }
    mutating func int() throws(Malformed) -> Int {
        let v = try i64()
        guard v >= 0 && v < Int64(Int32.max) else { throw Malformed() }
        return Int(v)
    }
    mutating func f64() throws(Malformed) -> Double { Double(bitPattern: UInt64(bitPattern: try i64())) }
    mutating func optI64() throws(Malformed) -> Int64? { try bool() ? try i64() : nil }
    mutating func optF64() throws(Malformed) -> Double? { try bool() ? try f64() : nil }
    mutating func string() throws(Malformed) -> String {
        let n = try int()
        guard at + n <= bytes.count else { throw Malformed() }
        defer { at += n }
        return String(decoding: bytes[at..<(at + n)], as: UTF8.self)
    }
}
