internal import CIoTLinux

/// CRC-32C (Castagnoli), the checksum of every journal record: the CPU's CRC-32C instruction where it has one
/// (x86-64 with SSE 4.2), otherwise table-driven, 8 bytes per step.
enum CRC32C {
    /// Whether ``checksum(_:)-(UnsafeRawBufferPointer)`` runs on the CPU's instruction.
    static let usesHardware = ciot_crc32c_available() != 0

    private static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard usesHardware else { return softwareChecksum(bytes) }
        guard let base = bytes.baseAddress else { return 0 }
        return ciot_crc32c_update(0xFFFF_FFFF, base, bytes.count) ^ 0xFFFF_FFFF
    }

    /// The table-driven checksum (every CPU; tested against the instruction where both exist).
    static func softwareChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        var i = 0
        let n = bytes.count
        tables.withUnsafeBufferPointer { t in
            let t0 = t[0]
            let t1 = t[1]
            let t2 = t[2]
            let t3 = t[3]
            let t4 = t[4]
            let t5 = t[5]
            let t6 = t[6]
            let t7 = t[7]
            while i + 8 <= n {
                let lo =
                    UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3])
                    << 24
                let x = crc ^ lo
                crc =
                    t7[Int(x & 0xFF)] ^ t6[Int((x >> 8) & 0xFF)] ^ t5[Int((x >> 16) & 0xFF)] ^ t4[Int(x >> 24)]
                    ^ t3[Int(bytes[i + 4])] ^ t2[Int(bytes[i + 5])] ^ t1[Int(bytes[i + 6])] ^ t0[Int(bytes[i + 7])]
                i += 8
            }
            while i < n {
                crc = (crc >> 8) ^ t0[Int((crc ^ UInt32(bytes[i])) & 0xFF)]
                i += 1
            }
        }
        return crc ^ 0xFFFF_FFFF
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
