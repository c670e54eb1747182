import IoTCore

extension FuzzTarget {
    /// The JSON parser, in one of three configurations picked by the input's length (`% 3`), so that every
    /// input is parsed once: the default with the message's device, the gateway layout without it, and the
    /// device layout with another time key and the raw payload kept.
    public static func fuzzJSON(_ data: [UInt8]) {
        let (parser, device) = jsonParsers[data.count % jsonParsers.count]
        _ = try? parser.parse(InboundMessage(transport: "fuzz", deviceUID: device, payload: data))
    }

    private static let jsonParsers: [(JSONParser, String?)] = [
        (JSONParser(), "dev-1"),
        (JSONParser(configuration: .init(layout: .gateway)), nil),
        (JSONParser(configuration: .init(layout: .device, timeKey: "time", valuesKey: "v", keepRaw: true)), "dev-1"),
    ]

    /// The SenML parser: with the message's device and a receive time (so times below 2^28 s are read as
    /// relative) for inputs of even length, with neither for odd ones.
    public static func fuzzSenML(_ data: [UInt8]) {
        let message =
            data.count % 2 == 0
            ? InboundMessage(
                transport: "fuzz", deviceUID: "gw-1", contentType: "application/senml+json", payload: data,
                receivedAt: 1_700_000_000_000)
            : InboundMessage(transport: "fuzz", payload: data)
        _ = try? SenMLParser().parse(message)
    }
}
