public import IoTCore

/// The read requests that cover a register map: registers of one table that are contiguous (or closer
/// than ``ModbusDevice/maxGap``) are read in one request, up to the protocol's limit per request.
public struct ModbusReadPlan: Sendable, Hashable {
    /// One read request.
    public struct Request: Sendable, Hashable {
        /// The table.
        public var area: ModbusArea
        /// The first address.
        public var address: Int
        /// Registers or bits to read.
        public var count: Int
        /// Indices into the register map of the values this request covers.
        public var registers: [Int]
    }

    /// The requests, in table and address order.
    public let requests: [Request]

    /// Plans the reads of `registers`; `maxGap` unused items may be read to join two ranges.
    public init(_ registers: [ModbusRegister], maxGap: Int = 0) {
        let maxGap = min(max(maxGap, 0), 65_536)  // a wider gap joins nothing more, and cannot overflow below
        var requests: [Request] = []
        for area in ModbusArea.allCases {
            let indices = registers.indices.filter { registers[$0].area == area }
                .sorted { (registers[$0].address, $0) < (registers[$1].address, $1) }
            var current: Request?
            for i in indices {
                let r = registers[i]
                let end = r.address + r.count
                if var c = current, r.address <= c.address + c.count + maxGap,
                    max(end, c.address + c.count) - c.address <= area.maxReadCount
                {
                    c.count = max(end, c.address + c.count) - c.address
                    c.registers.append(i)
                    current = c
                } else {
                    if let c = current { requests.append(c) }
                    current = Request(area: area, address: r.address, count: r.count, registers: [i])
                }
            }
            if let c = current { requests.append(c) }
        }
        self.requests = requests
    }
}
