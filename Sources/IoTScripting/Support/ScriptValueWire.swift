import IoTCore

/// A compact binary form of ``ScriptValue`` and strings, used on the JavaScript worker pipe.
///
/// Little-endian. Value tags: 0 null, 1 false, 2 true, 3 number (IEEE-754 bits, 8 bytes),
/// 4 string (u32 length + UTF-8), 5 array (u32 count + values), 6 object (u32 count + (string, value)…).
struct WireWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            u32(UInt32(buf.count))
            bytes.append(contentsOf: buf)
        }
    }
    mutating func value(_ v: ScriptValue) {
        switch v {
        case .null: u8(0)
        case .bool(let b): u8(b ? 2 : 1)
        case .number(let d):
            u8(3)
            u64(d.bitPattern)
        case .string(let s):
            u8(4)
            string(s)
        case .array(let a):
            u8(5)
            u32(UInt32(a.count))
            for e in a { value(e) }
        case .object(let o):
            u8(6)
            u32(UInt32(o.count))
            for (k, e) in o {
                string(k)
                value(e)
            }
        }
    }
}

/// Reads what ``WireWriter`` wrote; every read checks the bounds and the nesting depth.
struct WireReader {
    let bytes: [UInt8]
    var offset = 0
    static let maxDepth = 200

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    private static func truncated() -> IoTError {
        IoTError(.script, "the script worker sent a truncated or malformed frame")
    }

    mutating func u8() throws(IoTError) -> UInt8 {
        guard offset < bytes.count else { throw Self.truncated() }
        defer { offset += 1 }
        return bytes[offset]
    }
    mutating func u32() throws(IoTError) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw Self.truncated() }
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
        offset += 4
        return v
    }
    mutating func u64() throws(IoTError) -> UInt64 {
        guard offset + 8 <= bytes.count else { throw Self.truncated() }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return v
    }
    mutating func string() throws(IoTError) -> String {
        let n = Int(try u32())
        guard n <= bytes.count - offset else { throw Self.truncated() }
        defer { offset += n }
        return String(decoding: bytes[offset..<offset + n], as: UTF8.self)
    }
    mutating func value(depth: Int = 0) throws(IoTError) -> ScriptValue {
        guard depth < Self.maxDepth else {
            throw IoTError(.script, "a value is nested deeper than \(Self.maxDepth) levels")
        }
        switch try u8() {
        case 0: return .null
        case 1: return .bool(false)
        case 2: return .bool(true)
        case 3: return .number(Double(bitPattern: try u64()))
        case 4: return .string(try string())
        case 5:
            let n = Int(try u32())
            guard n <= bytes.count - offset else { throw Self.truncated() }
            var a: [ScriptValue] = []
            a.reserveCapacity(n)
            for _ in 0..<n { a.append(try value(depth: depth + 1)) }
            return .array(a)
        case 6:
            let n = Int(try u32())
            guard n <= bytes.count - offset else { throw Self.truncated() }
            var o: [String: ScriptValue] = [:]
            o.reserveCapacity(n)
            for _ in 0..<n {
                let k = try string()
                o[k] = try value(depth: depth + 1)
            }
            return .object(o)
        default: throw Self.truncated()
        }
    }
}
