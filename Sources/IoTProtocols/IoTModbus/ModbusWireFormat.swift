import IoTCore

extension ModbusDevice.Parity {
    /// libmodbus' parity character: `N`, `E` or `O`.
    var character: CChar {
        switch self {
        case .none: CChar(UInt8(ascii: "N"))
        case .even: CChar(UInt8(ascii: "E"))
        case .odd: CChar(UInt8(ascii: "O"))
        }
    }
}

extension ModbusByteOrder {
    /// Whether the 16-bit words of a multi-register value are in reverse order (`CDAB`, `DCBA`).
    var swapsWords: Bool { self == .cdab || self == .dcba }
    /// Whether the two bytes of each register are swapped (`BADC`, `DCBA`).
    var swapsBytes: Bool { self == .badc || self == .dcba }
}
