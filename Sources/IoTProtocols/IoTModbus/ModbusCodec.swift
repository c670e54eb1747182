public import IoTCore

/// Turns register words into signal values and back, following a ``ModbusRegister``'s type, byte order,
/// scale and offset. Pure functions: the register map's whole meaning lives here.
public enum ModbusCodec {
    /// The value of `register` from its words (exactly ``ModbusRegister/count`` of them, in address order).
    ///
    /// - Throws: ``IoTError/Code/malformedPayload`` when the word count is wrong or a string is not UTF-8.
    public static func decode(_ register: ModbusRegister, words: some Collection<UInt16>) throws(IoTError)
        -> SignalValue
    {
        guard words.count == register.count else {
            throw IoTError.malformed("register '\(register.signal)' needs \(register.count) words, got \(words.count)")
        }
        switch register.type {
        case .bool:
            let w = words.first!
            if let bit = register.bit { return .bool(w & (1 << UInt16(bit)) != 0) }
            return .bool(w != 0)
        case .string:
            var bytes = wireBytes(words, order: register.byteOrder, isString: true)
            while let last = bytes.last, last == 0 || last == 0x20 { bytes.removeLast() }
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw IoTError.malformed("register '\(register.signal)' does not hold UTF-8 text")
            }
            return .text(s)
        default:
            // The words as one big-endian number, without building the wire bytes (this runs for every
            // register of every poll): a byte swap turns each word around, a word swap puts the first word
            // lowest.
            let swapsBytes = register.byteOrder.swapsBytes
            let swapsWords = register.byteOrder.swapsWords
            var bits: UInt64 = 0
            var shift: UInt64 = 0
            for w in words {
                let v = UInt64(swapsBytes ? w.byteSwapped : w)
                if swapsWords {
                    bits |= v << shift
                    shift += 16
                } else {
                    bits = bits << 16 | v
                }
            }
            let raw: Double
            switch register.type {
            case .int16: raw = Double(Int16(truncatingIfNeeded: bits))
            case .uint16: raw = Double(UInt16(truncatingIfNeeded: bits))
            case .int32: raw = Double(Int32(truncatingIfNeeded: bits))
            case .uint32: raw = Double(UInt32(truncatingIfNeeded: bits))
            case .float32: raw = Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits)))
            default: raw = Double(bitPattern: bits)
            }
            return .number(raw * register.scale + register.offset)
        }
    }

    /// The words that make `value` the stored value of `register` (the inverse of ``decode(_:words:)``):
    /// numbers are unscaled (`(value − offset) / scale`) and rounded for integer types.
    ///
    /// - Throws: ``IoTError/Code/invalidValue`` when the value does not fit the type.
    public static func encode(_ value: SignalValue, for register: ModbusRegister) throws(IoTError) -> [UInt16] {
        func invalid(_ m: String) -> IoTError {
            IoTError(.invalidValue, "cannot write \(value) to '\(register.signal)' (\(register.type.rawValue)): \(m)")
        }
        switch register.type {
        case .bool:
            guard case .bool(let b)? = value.converted(to: .bool) else { throw invalid("send true or false") }
            if register.bit != nil {
                throw invalid(
                    "a single bit of a register cannot be written without a read-modify-write; write the whole register"
                )
            }
            return [b ? 1 : 0]
        case .string:
            guard case .text(let s) = value else { throw invalid("send text") }
            var bytes = Array(s.utf8)
            guard bytes.count <= register.length * 2 else {
                throw invalid(
                    "the text has \(bytes.count) bytes; \(register.length) registers hold \(register.length * 2)")
            }
            bytes += [UInt8](repeating: 0, count: register.length * 2 - bytes.count)
            return words(fromWire: bytes, order: register.byteOrder, isString: true)
        default:
            guard case .number(let v)? = value.converted(to: .number) else { throw invalid("send a number") }
            let raw = (v - register.offset) / register.scale
            let bits: UInt64
            let width: Int
            func integer<T: FixedWidthInteger>(_: T.Type) throws(IoTError) -> UInt64 {
                let r = raw.rounded()
                guard r >= Double(T.min), r <= Double(T.max) else {
                    throw invalid("raw value \(r) is outside \(T.min)…\(T.max)")
                }
                return UInt64(truncatingIfNeeded: T(r))
            }
            switch register.type {
            case .int16: (bits, width) = (try integer(Int16.self), 2)
            case .uint16: (bits, width) = (try integer(UInt16.self), 2)
            case .int32: (bits, width) = (try integer(Int32.self), 4)
            case .uint32: (bits, width) = (try integer(UInt32.self), 4)
            case .float32: (bits, width) = (UInt64(Float(raw).bitPattern), 4)
            default: (bits, width) = (raw.bitPattern, 8)
            }
            var bytes: [UInt8] = []
            for i in stride(from: width - 1, through: 0, by: -1) {
                bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i))))
            }
            return words(fromWire: bytes, order: register.byteOrder, isString: false)
        }
    }

    /// The value's bytes, most significant first (for strings: text order), from the words.
    static func wireBytes(_ words: some Collection<UInt16>, order: ModbusByteOrder, isString: Bool) -> [UInt8] {
        var ws = Array(words)
        if order.swapsWords && !isString { ws.reverse() }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ws.count * 2)
        for w in ws {
            let hi = UInt8(w >> 8)
            let lo = UInt8(w & 0xFF)
            if order.swapsBytes { bytes += [lo, hi] } else { bytes += [hi, lo] }
        }
        return bytes
    }

    /// The inverse of ``wireBytes(_:order:isString:)``.
    static func words(fromWire bytes: [UInt8], order: ModbusByteOrder, isString: Bool) -> [UInt16] {
        var ws: [UInt16] = []
        for i in stride(from: 0, to: bytes.count, by: 2) {
            let (a, b) = (UInt16(bytes[i]), UInt16(bytes[i + 1]))
            ws.append(order.swapsBytes ? b << 8 | a : a << 8 | b)
        }
        if order.swapsWords && !isString { ws.reverse() }
        return ws
    }
}
