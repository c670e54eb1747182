/// Reads plain JSON telemetry: flat objects, the ThingsBoard `{"ts", "values"}` form, arrays of
/// either, and the ThingsBoard gateway form keyed by device.
///
/// Accepted shapes (each yields records in payload order):
/// - flat object `{"ts": 1700000000123, "temp": 21.5, "on": true, "fw": "1.2"}`: one record;
/// - ThingsBoard form `{"ts": 1700000000123, "values": {"temp": 21.5}}` (an object whose only keys
///   are `values`, an object, and optionally the time key): one record;
/// - an array of either: one record per element;
/// - gateway form `{"dev-A": [{"ts": …, "values": {…}}, …], "dev-B": {"temp": 3}}`: records whose
///   ``DeviceRecord/deviceUID`` is the message's device (the gateway) and whose
///   ``DeviceRecord/identificationCode`` is the key. When the message has no device, the key is used
///   for both. See ``Layout`` for when an object is read as the gateway form.
///
/// Mapping rules:
/// - The time key (``Configuration/timeKey``, `ts` by default) is optional and holds integer
///   milliseconds (UTC), `0 ≤ ts < 2^53`; a fractional, negative or non-number time is malformed.
///   A `null` time counts as absent, and a record without time keeps ``DeviceRecord/time`` `nil`.
/// - Values: number → ``SignalValue/number(_:)``, string → ``SignalValue/text(_:)``,
///   boolean → ``SignalValue/bool(_:)``; `null` values are skipped. An object or array as a signal
///   value is malformed (the error names the key).
/// - An object with no values left (`{}`, `{"ts": 1}`, `{"a": null}`) and an empty array yield no
///   record; that is not an error.
/// - Duplicate keys: the last one wins.
/// - Without a device in the payload, ``InboundMessage/deviceUID`` is required; a message that would
///   produce a record without it is malformed ("no device: …").
///
/// ```swift
/// let parser = JSONParser()
/// let records = try parser.parse(InboundMessage(
///     transport: "mqtt", deviceUID: "t-1", text: #"{"ts": 1700000000123, "temp": 21.5}"#))
/// // [DeviceRecord(deviceUID: "t-1", time: 1700000000123, values: ["temp": .number(21.5)])]
/// ```
public struct JSONParser: Parser {
    /// How a top-level object whose values are all objects or arrays is read.
    public enum Layout: Sendable, Hashable {
        /// The gateway form when the object is non-empty, every value is an object or an array, and it
        /// is not the ThingsBoard `{"ts", "values"}` form; a device payload otherwise. A message whose
        /// sender is known not to be a gateway (``InboundMessage/fromGateway`` `false`) is always a device
        /// payload.
        case auto
        /// Never the gateway form: the payload is about the message's own device.
        case device
        /// Always the gateway form: every top-level key names a device.
        case gateway
    }

    /// How the parser reads payloads.
    public struct Configuration: Sendable {
        /// How a top-level object is read (device or gateway form). Default ``Layout/auto``.
        public var layout: Layout
        /// The key that holds the time in milliseconds. Default `"ts"`.
        public var timeKey: String
        /// The key of the ThingsBoard values object (`{"ts": …, "values": {…}}`). Default `"values"`.
        public var valuesKey: String
        /// Whether records keep the message payload in ``DeviceRecord/raw``. Default `false`.
        public var keepRaw: Bool

        /// Creates a configuration; every argument has the default documented on its property.
        public init(layout: Layout = .auto, timeKey: String = "ts", valuesKey: String = "values", keepRaw: Bool = false)
        {
            self.layout = layout
            self.timeKey = timeKey
            self.valuesKey = valuesKey
            self.keepRaw = keepRaw
        }
    }

    /// The configuration in use.
    public var configuration: Configuration

    /// Creates a parser.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// `"json"`.
    public var name: String { "json" }

    /// Parses one JSON message into records; see ``JSONParser`` for the accepted shapes.
    public func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
        let document = try JSONReader.read(message.payload)
        var output = Output(message: message, keepRaw: configuration.keepRaw)
        switch document {
        case .object(let members):
            if isGateway(members, fromGateway: message.fromGateway) {
                try readGateway(members, into: &output)
            } else {
                try readRecord(members, device: nil, context: "", into: &output)
            }
        case .array(let elements):
            for (i, element) in elements.enumerated() {
                guard case .object(let members) = element else {
                    throw IoTError.malformed(
                        "JSON element \(i) of the top-level array is \(element.kind); expected an object of signal values"
                    )
                }
                try readRecord(members, device: nil, context: "element \(i): ", into: &output)
            }
        default:
            throw IoTError.malformed(
                "JSON payload is \(document.kind); expected an object of signal values or an array of them")
        }
        return output.records
    }

    // MARK: Shapes

    private func isGateway(_ members: [JSONMember], fromGateway: Bool?) -> Bool {
        switch configuration.layout {
        case .device: return false
        case .gateway: return true
        case .auto:
            // A sender known not to be a gateway speaks only for itself: the device form.
            if fromGateway == false { return false }
            guard !members.isEmpty, !isThingsBoardForm(members) else { return false }
            return members.allSatisfy { member in
                switch member.value {
                case .object, .array: true
                default: false
                }
            }
        }
    }

    private func isThingsBoardForm(_ members: [JSONMember]) -> Bool {
        guard case .object = members[key: configuration.valuesKey] else { return false }
        return members.allSatisfy { $0.key == configuration.valuesKey || $0.key == configuration.timeKey }
    }

    private func readGateway(_ members: [JSONMember], into output: inout Output) throws(IoTError) {
        for member in members {
            let device = member.key
            guard !device.isEmpty else {
                throw IoTError.malformed("JSON gateway payload has an empty device name; expected a non-empty key")
            }
            switch member.value {
            case .object(let record):
                try readRecord(record, device: device, context: "device \"\(device)\": ", into: &output)
            case .array(let elements):
                for (i, element) in elements.enumerated() {
                    guard case .object(let record) = element else {
                        throw IoTError.malformed(
                            "JSON gateway payload, device \"\(device)\", element \(i) is \(element.kind); expected an object of signal values"
                        )
                    }
                    try readRecord(
                        record, device: device, context: "device \"\(device)\" element \(i): ", into: &output)
                }
            default:
                throw IoTError.malformed(
                    "JSON gateway payload, device \"\(device)\" is \(member.value.kind); expected an object or an array of objects"
                )
            }
        }
    }

    /// Reads a flat or ThingsBoard-form object into at most one record.
    private func readRecord(
        _ members: [JSONMember], device: String?, context: String, into output: inout Output
    ) throws(IoTError) {
        var time: Int64? = nil
        var signals: [JSONMember] = members
        var isFlat = true
        if let timeValue = members[key: configuration.timeKey] {
            time = try readTime(timeValue, context: context)
        }
        if !members.isEmpty, isThingsBoardForm(members),
            case .object(let inner)? = members[key: configuration.valuesKey]
        {
            signals = inner
            isFlat = false
        }
        var values: [String: SignalValue] = [:]
        values.reserveCapacity(signals.count)
        for member in signals {
            if isFlat && member.key == configuration.timeKey { continue }
            switch member.value {
            case .null: continue
            case .number(let n): values[member.key] = .number(n)
            case .string(let s): values[member.key] = .text(s)
            case .bool(let b): values[member.key] = .bool(b)
            case .object, .array:
                throw IoTError.malformed(
                    "JSON \(context)value of \"\(member.key)\" is \(member.value.kind); expected a number, string, boolean or null"
                )
            }
        }
        if values.isEmpty { return }
        try output.append(device: device, time: time, values: values)
    }

    private func readTime(_ value: JSONValue, context: String) throws(IoTError) -> Int64? {
        let key = configuration.timeKey
        switch value {
        case .null: return nil
        case .number(let n):
            guard n >= 0, n < 9_007_199_254_740_992, n.rounded(.towardZero) == n else {
                throw IoTError.malformed(
                    "JSON \(context)\"\(key)\" is \(n); expected whole milliseconds since 1970 (an integer from 0 to 2^53)"
                )
            }
            return Int64(n)
        default:
            throw IoTError.malformed(
                "JSON \(context)\"\(key)\" is \(value.kind); expected whole milliseconds since 1970 (an integer number)"
            )
        }
    }

    /// Collects records and resolves their device.
    private struct Output {
        let message: InboundMessage
        let keepRaw: Bool
        var records: [DeviceRecord] = []

        mutating func append(device: String?, time: Int64?, values: [String: SignalValue]) throws(IoTError) {
            guard let deviceUID = message.deviceUID ?? device else {
                throw IoTError.malformed(
                    "no device: the JSON payload does not name one and the message has no deviceUID; expected the transport to set it or a gateway payload keyed by device"
                )
            }
            records.append(
                DeviceRecord(
                    deviceUID: deviceUID, identificationCode: device ?? deviceUID, time: time, values: values,
                    raw: keepRaw ? message.payload : nil))
        }
    }
}
