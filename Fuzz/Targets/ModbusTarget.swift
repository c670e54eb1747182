import IoTCore
import IoTProtocols

extension FuzzTarget {
    /// The Modbus codec. The first byte picks the register: its data type (`% 8`, in
    /// ``IoTModbus/ModbusDataType`` order), byte order (`/ 8 % 4`) and scaling (`/ 32 % 3`: plain,
    /// `× 0.1 − 40`, or the scale and offset that bytes 1–16 spell as two doubles, when valid); bool registers
    /// also on a bit of a register and on a coil. The rest are register words (big-endian pairs), decoded, and
    /// the value read is encoded back and must decode to the same value (integer types: to the same words).
    /// The rest is also written, as text and as a number, to the register.
    public static func fuzzModbus(_ data: [UInt8]) {
        guard let selector = data.first else { return }
        let rest = data.dropFirst()
        let words = stride(from: rest.startIndex, to: rest.endIndex - 1, by: 2).map {
            UInt16(data[$0]) << 8 | UInt16(data[$0 + 1])
        }
        let type = ModbusDataType.allCases[Int(selector % 8)]
        let order = ModbusByteOrder.allCases[Int(selector / 8 % 4)]
        let scaling = Int(selector / 32 % 3)
        var scale = 1.0
        var offset = 0.0
        if scaling == 1 {
            (scale, offset) = (0.1, -40)
        } else if scaling == 2 {
            guard rest.count >= 16 else { return }
            scale = Double(bitPattern: rest.prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
            offset = Double(bitPattern: rest.dropFirst(8).prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
        }
        var registers = [
            ModbusRegister(
                signal: "s", address: 0, type: type, byteOrder: order, scale: scale, offset: offset,
                length: type == .string ? max(1, min(words.count, 125)) : 1)
        ]
        if type == .bool {
            registers.append(ModbusRegister(signal: "b", address: 0, type: .bool, bit: Int(rest.first ?? 0) % 16))
            registers.append(ModbusRegister(signal: "c", area: selector & 1 == 0 ? .coil : .discreteInput, address: 0))
        }
        let text = SignalValue.text(String(decoding: rest, as: UTF8.self))
        let number = SignalValue.number(Double(bitPattern: rest.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }))
        for register in registers {
            guard (try? register.validate()) != nil else { continue }
            for value in [text, number, .bool(selector & 1 == 0)] {
                _ = try? ModbusCodec.encode(value, for: register)
            }
            _ = try? ModbusCodec.decode(register, words: words)
            guard words.count >= register.count else { continue }
            let own = words.prefix(register.count)
            guard let value = try? ModbusCodec.decode(register, words: own) else { continue }
            if scaling < 2 { checkRoundTrip(value, of: Array(own), register: register) }
        }
    }

    /// Encoding what was decoded gives a value that decodes the same (and, for integers, the same words), with
    /// the plain and the `× 0.1 − 40` scaling.
    private static func checkRoundTrip(_ value: SignalValue, of words: [UInt16], register: ModbusRegister) {
        let encoded: [UInt16]
        do {
            encoded = try ModbusCodec.encode(value, for: register)
        } catch {
            // Only values that cannot be written are refused: NaN and infinities, a bit of a register.
            if case .number(let v) = value, !v.isFinite { return }
            if register.bit != nil { return }
            if register.scale != 1, register.type == .float32 || register.type == .float64 {
                return  // a float scaled back may overflow its type
            }
            preconditionFailure("\(register): \(words) decoded to \(value), which does not encode: \(error.message)")
        }
        precondition(encoded.count == register.count, "\(register): \(value) encoded to \(encoded.count) words")
        let again: SignalValue
        do {
            again = try ModbusCodec.decode(register, words: encoded)
        } catch {
            preconditionFailure("\(register): \(value) encoded to \(encoded), which does not decode: \(error.message)")
        }
        switch register.type {
        case .int16, .uint16, .int32, .uint32:
            precondition(encoded == words, "\(register): \(words) → \(value) → \(encoded)")
        case .float32, .float64:
            if register.scale == 1 && register.offset == 0 {
                precondition(again == value, "\(register): \(words) → \(value) → \(encoded) → \(again)")
            }
        case .bool, .string:
            precondition(again == value, "\(register): \(words) → \(value) → \(encoded) → \(again)")
        }
    }
}
