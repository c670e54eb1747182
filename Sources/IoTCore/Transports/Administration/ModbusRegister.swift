/// The four Modbus data tables.
public enum ModbusArea: String, Sendable, Hashable, Codable, CaseIterable {
    /// Read/write 16-bit registers (function codes 3, 6, 16).
    case holdingRegister = "holding"
    /// Read-only 16-bit registers (function code 4).
    case inputRegister = "input"
    /// Read/write bits (function codes 1, 5, 15).
    case coil
    /// Read-only bits (function code 2).
    case discreteInput = "discrete"

    /// Whether the table holds bits rather than 16-bit registers.
    public var isBits: Bool { self == .coil || self == .discreteInput }
    /// Whether the platform may write it (holding registers and coils).
    public var isWritable: Bool { self == .holdingRegister || self == .coil }
    /// Items one read request may cover (libmodbus's `MODBUS_MAX_READ_REGISTERS` / `_BITS`).
    public var maxReadCount: Int { isBits ? 2_000 : 125 }
}

/// How a value is laid out in registers.
public enum ModbusDataType: String, Sendable, Hashable, Codable, CaseIterable {
    /// One register, signed.
    case int16
    /// One register, unsigned.
    case uint16
    /// Two registers, signed.
    case int32
    /// Two registers, unsigned.
    case uint32
    /// Two registers, IEEE 754 single precision.
    case float32
    /// Four registers, IEEE 754 double precision.
    case float64
    /// A coil or discrete input; on a register, bit ``ModbusRegister/bit`` (or "not zero").
    case bool
    /// ``ModbusRegister/length`` registers of text, two bytes each; trailing NULs and spaces are dropped.
    case string

    /// Registers a value of this type occupies (strings: `length`).
    func registerCount(length: Int) -> Int {
        switch self {
        case .int16, .uint16, .bool: 1
        case .int32, .uint32, .float32: 2
        case .float64: 4
        case .string: length
        }
    }
}

/// The order of a multi-byte value's bytes on the wire, with `A` its most significant byte.
///
/// `ABCD` is Modbus's big-endian default; `CDAB` swaps the 16-bit words (low word first, common on
/// PLCs), `BADC` swaps the bytes inside each word, `DCBA` is fully little-endian. For 64-bit values the
/// same rule extends to four words (`CDAB` reverses the word order); for 16-bit values only the byte swap
/// (`BADC`, `DCBA`) matters; for strings `BADC`/`DCBA` put each register's low byte first.
public enum ModbusByteOrder: String, Sendable, Hashable, Codable, CaseIterable {
    /// Big-endian words, big-endian bytes.
    case abcd = "ABCD"
    /// Little-endian words (word swap), big-endian bytes.
    case cdab = "CDAB"
    /// Big-endian words, bytes swapped in each word.
    case badc = "BADC"
    /// Fully little-endian.
    case dcba = "DCBA"
}

/// One entry of a device's register map: where a signal's value sits and how to read it.
///
/// ```swift
/// let temperature = ModbusRegister(signal: "temp", area: .holdingRegister, address: 100,
///                                  type: .int16, scale: 0.1)           // 215 → 21.5
/// let energy = ModbusRegister(signal: "energy", area: .inputRegister, address: 0,
///                             type: .float32, byteOrder: .cdab)
/// ```
/// The stored value is `raw × scale + offset` for numbers; `bool` and `string` ignore scale and offset.
public struct ModbusRegister: Sendable, Hashable, Codable {
    /// The signal the value is stored under.
    public var signal: String
    /// The data table.
    public var area: ModbusArea
    /// The 0-based address of the first register or bit (the protocol address, not the 4xxxx number).
    public var address: Int
    /// How the value is encoded. Default `uint16` on registers, `bool` on bits.
    public var type: ModbusDataType
    /// Byte and word order. Default `ABCD`.
    public var byteOrder: ModbusByteOrder
    /// Multiplier applied to numbers. Default 1.
    public var scale: Double
    /// Added after scaling. Default 0.
    public var offset: Double
    /// Registers of a `string`. Default 1.
    public var length: Int
    /// For `bool` on a register: the bit (0 = least significant). `nil`: the register is not zero.
    public var bit: Int?

    /// Creates a map entry; see the properties for defaults.
    public init(
        signal: String, area: ModbusArea = .holdingRegister, address: Int, type: ModbusDataType? = nil,
        byteOrder: ModbusByteOrder = .abcd, scale: Double = 1, offset: Double = 0, length: Int = 1, bit: Int? = nil
    ) {
        self.signal = signal
        self.area = area
        self.address = address
        self.type = type ?? (area.isBits ? .bool : .uint16)
        self.byteOrder = byteOrder
        self.scale = scale
        self.offset = offset
        self.length = length
        self.bit = bit
    }

    /// Items (registers or bits) the value occupies.
    public var count: Int { area.isBits ? 1 : type.registerCount(length: length) }

    enum CodingKeys: String, CodingKey { case signal, area, address, type, byteOrder, scale, offset, length, bit }

    /// Decodes a map entry; only `signal` and `address` are required (`area` defaults to `holding`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            signal: try c.decode(String.self, forKey: .signal),
            area: try c.decodeIfPresent(ModbusArea.self, forKey: .area) ?? .holdingRegister,
            address: try c.decode(Int.self, forKey: .address),
            type: try c.decodeIfPresent(ModbusDataType.self, forKey: .type),
            byteOrder: try c.decodeIfPresent(ModbusByteOrder.self, forKey: .byteOrder) ?? .abcd,
            scale: try c.decodeIfPresent(Double.self, forKey: .scale) ?? 1,
            offset: try c.decodeIfPresent(Double.self, forKey: .offset) ?? 0,
            length: try c.decodeIfPresent(Int.self, forKey: .length) ?? 1,
            bit: try c.decodeIfPresent(Int.self, forKey: .bit))
    }

    /// Checks ranges: address 0–65535, the value inside the table, bits only as `bool`, string length
    /// 1–125, bit 0–15, a finite non-zero scale.
    public func validate() throws(IoTError) {
        func fail(_ m: String) -> IoTError { IoTError(.invalidArgument, "Modbus register '\(signal)': \(m)") }
        guard !signal.isEmpty else { throw IoTError(.invalidArgument, "a Modbus register has an empty signal name") }
        guard address >= 0, address + count <= 65_536 else {
            throw fail("address \(address) (+\(count)) is outside 0–65535; use the 0-based protocol address")
        }
        if area.isBits && type != .bool { throw fail("\(area.rawValue) holds bits: use type bool") }
        if type == .string && !(1...125).contains(length) {
            throw fail("string length \(length) must be 1–125 registers")
        }
        if let bit, !(0...15).contains(bit) { throw fail("bit \(bit) must be 0–15") }
        if bit != nil && type != .bool { throw fail("bit is only for type bool") }
        guard scale.isFinite, scale != 0, offset.isFinite else {
            throw fail("scale must be finite and not 0; offset finite")
        }
    }
}
