/// One Modbus device the platform polls: how to reach it, which unit, how often, and its register map.
///
/// ```swift
/// let meter = ModbusDevice(
///     identity: DeviceIdentity(tenant: "acme", deviceUID: "meter-1"),
///     connection: .tcp(host: "10.0.0.5", port: 502), unitID: 1, intervalMillis: 1_000,
///     registers: [ModbusRegister(signal: "voltage", area: .inputRegister, address: 0, type: .float32)])
/// let rtu = ModbusDevice(
///     identity: DeviceIdentity(tenant: "acme", deviceUID: "pump-3"),
///     connection: .rtu(path: "/dev/ttyUSB0", baud: 9_600, parity: .even), unitID: 3, registers: […])
/// ```
/// IoTModbus' `ModbusTransport` polls it. Modbus ASCII is not supported: libmodbus implements only RTU and
/// TCP framing.
public struct ModbusDevice: Sendable, Hashable, Codable {
    /// How the device is reached.
    public enum Connection: Sendable, Hashable, Codable {
        /// Modbus TCP.
        case tcp(host: String, port: Int)
        /// Modbus RTU on a serial line (8 data bits).
        case rtu(path: String, baud: Int, parity: Parity, stopBits: Int)

        /// Modbus RTU with one stop bit.
        public static func rtu(path: String, baud: Int = 9_600, parity: Parity = .none) -> Connection {
            .rtu(path: path, baud: baud, parity: parity, stopBits: 1)
        }
    }

    /// Serial parity.
    public enum Parity: String, Sendable, Hashable, Codable {
        /// No parity bit.
        case none
        /// Even parity.
        case even
        /// Odd parity.
        case odd
    }

    /// The device its values are stored under (it must be registered, or its tenant auto-registers).
    public var identity: DeviceIdentity
    /// How to reach it.
    public var connection: Connection
    /// The Modbus unit (slave) id, 0–247. Default 1 (TCP gateways often need the real id; many TCP
    /// devices ignore it).
    public var unitID: Int
    /// Time between polls, in ms. Default 1 000. 0 polls again as soon as a poll ends (as fast as the
    /// device answers; for a benchmark or a local gateway, not for a shared field bus).
    public var intervalMillis: Int64
    /// How long one request may wait for its response (and a TCP connect), in ms; sub-second values are
    /// fine. Default 300. A whole poll is given `timeoutMillis × (requests + 1)`.
    public var timeoutMillis: Int64
    /// Delay before the first poll, in ms; `nil` (default) picks one at random within one interval, so
    /// that many devices are not polled at the same instant.
    public var startDelayMillis: Int64?
    /// First delay after a failed poll, in ms, doubling up to ``backoffMaxMillis``. Default: the interval
    /// (1 000 when the interval is 0).
    public var backoffInitialMillis: Int64?
    /// Longest delay between polls of a device that does not answer, in ms. Default 60 000.
    public var backoffMaxMillis: Int64
    /// Unused registers that may be read to join two ranges into one request. Default 0: only
    /// contiguous registers share a request.
    public var maxGap: Int
    /// The register map.
    public var registers: [ModbusRegister]

    /// Creates a device; see the properties for defaults.
    public init(
        identity: DeviceIdentity, connection: Connection, unitID: Int = 1, intervalMillis: Int64 = 1_000,
        timeoutMillis: Int64 = 300, startDelayMillis: Int64? = nil, backoffInitialMillis: Int64? = nil,
        backoffMaxMillis: Int64 = 60_000, maxGap: Int = 0, registers: [ModbusRegister]
    ) {
        self.identity = identity
        self.connection = connection
        self.unitID = unitID
        self.intervalMillis = intervalMillis
        self.timeoutMillis = timeoutMillis
        self.startDelayMillis = startDelayMillis
        self.backoffInitialMillis = backoffInitialMillis
        self.backoffMaxMillis = backoffMaxMillis
        self.maxGap = maxGap
        self.registers = registers
    }

    /// Checks ranges; ``ModbusAdministration`` implementations (IoTModbus' `ModbusTransport`) call it
    /// before polling.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` saying what to change.
    public func validate() throws(IoTError) {
        func fail(_ m: String) -> IoTError { IoTError(.invalidArgument, "Modbus device \(identity): \(m)") }
        guard (0...247).contains(unitID) else { throw fail("unit id \(unitID) must be 0–247") }
        guard intervalMillis >= 0, intervalMillis <= IoTLimits.maxDurationMillis else {
            throw fail(
                "intervalMillis must be 0 (poll continuously) to \(IoTLimits.maxDurationMillis) (10 years), e.g. 1000")
        }
        guard timeoutMillis >= 1, timeoutMillis <= 3_600_000 else {
            throw fail("timeoutMillis must be 1 to 3600000 (one hour), e.g. 300")
        }
        guard (0...65_535).contains(maxGap) else { throw fail("maxGap must be 0 to 65535 registers") }
        for (field, value, minimum) in [
            ("startDelayMillis", startDelayMillis, Int64(0)), ("backoffInitialMillis", backoffInitialMillis, 1),
            ("backoffMaxMillis", backoffMaxMillis, 1),
        ] {
            if let value, !(minimum...IoTLimits.maxDurationMillis).contains(value) {
                throw fail("\(field) must be \(minimum) to \(IoTLimits.maxDurationMillis) (10 years)")
            }
        }
        guard !registers.isEmpty else { throw fail("it has no registers; add at least one to its register map") }
        switch connection {
        case .tcp(let host, let port):
            guard !host.isEmpty, (1...65_535).contains(port) else { throw fail("TCP needs a host and a port 1–65535") }
        case .rtu(let path, let baud, _, let stopBits):
            guard !path.isEmpty, (1...4_000_000).contains(baud) else {
                throw fail("RTU needs a device path and a baud rate of 1 to 4000000 (e.g. 9600)")
            }
            guard stopBits == 1 || stopBits == 2 else { throw fail("stop bits must be 1 or 2") }
        }
        var seen: Set<String> = []
        for r in registers {
            try r.validate()
            guard seen.insert(r.signal).inserted else { throw fail("signal '\(r.signal)' is mapped twice") }
        }
    }

    enum CodingKeys: String, CodingKey {
        case tenant, uid, tcp, rtu
        case unitID = "unitId"
        case intervalMillis, timeoutMillis, startDelayMillis,
            backoffInitialMillis, backoffMaxMillis, maxGap, registers
    }
    struct TCP: Codable {
        var host: String
        var port: Int?
    }
    struct RTU: Codable {
        var path: String
        var baud: Int?
        var parity: Parity?
        var stopBits: Int?
    }

    /// Decodes the configuration form: `tenant`, `uid`, one of `tcp: {host, port}` (port 502 by default)
    /// or `rtu: {path, baud, parity, stopBits}` (9600, none, 1), `unitId`, `registers` and the optional
    /// timings.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let connection: Connection
        if let t = try c.decodeIfPresent(TCP.self, forKey: .tcp) {
            connection = .tcp(host: t.host, port: t.port ?? 502)
        } else if let r = try c.decodeIfPresent(RTU.self, forKey: .rtu) {
            connection = .rtu(path: r.path, baud: r.baud ?? 9_600, parity: r.parity ?? .none, stopBits: r.stopBits ?? 1)
        } else {
            throw DecodingError.dataCorruptedError(
                forKey: .tcp, in: c,
                debugDescription: "a Modbus device needs `tcp: {host, port}` or `rtu: {path, baud, parity}`")
        }
        self.init(
            identity: DeviceIdentity(
                tenant: try c.decode(TenantID.self, forKey: .tenant), deviceUID: try c.decode(String.self, forKey: .uid)
            ),
            connection: connection,
            unitID: try c.decodeIfPresent(Int.self, forKey: .unitID) ?? 1,
            intervalMillis: try c.decodeIfPresent(Int64.self, forKey: .intervalMillis) ?? 1_000,
            timeoutMillis: try c.decodeIfPresent(Int64.self, forKey: .timeoutMillis) ?? 300,
            startDelayMillis: try c.decodeIfPresent(Int64.self, forKey: .startDelayMillis),
            backoffInitialMillis: try c.decodeIfPresent(Int64.self, forKey: .backoffInitialMillis),
            backoffMaxMillis: try c.decodeIfPresent(Int64.self, forKey: .backoffMaxMillis) ?? 60_000,
            maxGap: try c.decodeIfPresent(Int.self, forKey: .maxGap) ?? 0,
            registers: try c.decode([ModbusRegister].self, forKey: .registers))
    }

    /// Encodes the configuration form read by ``init(from:)``.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(identity.tenant, forKey: .tenant)
        try c.encode(identity.deviceUID, forKey: .uid)
        switch connection {
        case .tcp(let host, let port): try c.encode(TCP(host: host, port: port), forKey: .tcp)
        case .rtu(let path, let baud, let parity, let stopBits):
            try c.encode(RTU(path: path, baud: baud, parity: parity, stopBits: stopBits), forKey: .rtu)
        }
        try c.encode(unitID, forKey: .unitID)
        try c.encode(intervalMillis, forKey: .intervalMillis)
        try c.encode(timeoutMillis, forKey: .timeoutMillis)
        try c.encodeIfPresent(startDelayMillis, forKey: .startDelayMillis)
        try c.encodeIfPresent(backoffInitialMillis, forKey: .backoffInitialMillis)
        try c.encode(backoffMaxMillis, forKey: .backoffMaxMillis)
        try c.encode(maxGap, forKey: .maxGap)
        try c.encode(registers, forKey: .registers)
    }
}
