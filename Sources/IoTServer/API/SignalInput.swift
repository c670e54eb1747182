import IoTCore

/// A signal in a request body; only `name` is required.
struct SignalInput: Decodable {
    var name: String
    var type: SignalType?
    var alias: String?
    var unit: String?
    var cacheSize: Int?

    /// Validates a list of signals (names, duplicates, cache sizes) and builds them.
    static func signals(_ inputs: [SignalInput]?) throws -> [Signal] {
        var seen: Set<String> = []
        return try (inputs ?? []).map { input in
            try validateSignalName(input.name)
            guard seen.insert(input.name).inserted else {
                throw APIError.badRequest("signal \"\(input.name)\" is listed twice; list each signal once")
            }
            let cacheSize = input.cacheSize ?? 0
            guard (0...100_000).contains(cacheSize) else {
                throw APIError.badRequest("signal \"\(input.name)\": cacheSize \(cacheSize) is out of range 0–100000")
            }
            return Signal(
                name: input.name, type: input.type ?? .number, alias: input.alias, unit: input.unit,
                cacheSize: cacheSize)
        }
    }
}
