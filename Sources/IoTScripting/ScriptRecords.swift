import IoTCore

/// Turns what a parser script returned into ``DeviceRecord``s: the `parse(msg)` form and the
/// go-iot-platform `main(nc)` form.
enum ScriptRecords {
    /// The `msg` a `parse(msg)` script receives: `payload` (the bytes as a string), `transport`, and when known
    /// `topic`, `device` and `receivedAt`.
    static func argument(_ message: InboundMessage) -> ScriptValue {
        var msg: [String: ScriptValue] = [
            "payload": .string(String(decoding: message.payload, as: UTF8.self)),
            "transport": .string(message.transport),
        ]
        if let topic = message.topic { msg["topic"] = .string(topic) }
        if let device = message.deviceUID { msg["device"] = .string(device) }
        if let at = message.receivedAt { msg["receivedAt"] = .number(Double(at)) }
        return .object(msg)
    }

    static func malformed(_ script: String, _ what: String) -> IoTError {
        IoTError(.malformedPayload, "script '\(script)' returned \(what)")
    }

    /// The elements of a returned list; a single object is a list of one, `null` an empty list.
    static func list(_ value: ScriptValue, single: (([String: ScriptValue]) -> Bool), script: String) throws(IoTError)
        -> [ScriptValue]
    {
        switch value {
        case .null: return []
        case .array(let a): return a
        case .object(let o) where o.isEmpty: return []
        case .object(let o) where single(o): return [value]
        default: throw malformed(script, "\(kind(value)) where a list of records was expected")
        }
    }

    static func kind(_ v: ScriptValue) -> String {
        switch v {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }

    /// `[{device, identificationCode, time, values: {name: value}}]`; `device` defaults to the message's.
    /// An object that is neither a record (no `values`) nor empty holds the values of the message's device.
    static func records(_ value: ScriptValue, message: InboundMessage, script: String) throws(IoTError)
        -> [DeviceRecord]
    {
        var out: [DeviceRecord] = []
        if case .object(let flat) = value, !flat.isEmpty, flat["values"] == nil {
            guard let device = message.deviceUID else {
                throw malformed(script, "values without a device, for a message without one")
            }
            return [DeviceRecord(deviceUID: device, values: try signalValues(flat, record: 0, script: script))]
        }
        for (i, element) in try list(value, single: { $0["values"] != nil }, script: script).enumerated() {
            guard case .object(let r) = element else { throw malformed(script, "\(kind(element)) as record \(i + 1)") }
            guard let device = try text(r["device"], "device", i, script) ?? message.deviceUID else {
                throw malformed(script, "record \(i + 1) without a device, for a message without one")
            }
            let code = try text(r["identificationCode"], "identificationCode", i, script)
            let time: Int64?
            switch r["time"] {
            case nil, .null: time = nil
            case .number(let t) where t.isFinite && abs(t) < 9.0e15: time = Int64(t.rounded())
            case let other?: throw malformed(script, "record \(i + 1) with time \(kind(other)); expected milliseconds")
            }
            var values: [String: SignalValue] = [:]
            switch r["values"] {
            case nil, .null: break
            case .object(let vs): values = try signalValues(vs, record: i, script: script)
            case .array(let a) where a.isEmpty: break
            case let other?: throw malformed(script, "record \(i + 1) with values \(kind(other)); expected an object")
            }
            out.append(DeviceRecord(deviceUID: device, identificationCode: code, time: time, values: values))
        }
        return out
    }

    /// `{name: value}` as signal values; `null` values are left out.
    private static func signalValues(_ vs: [String: ScriptValue], record i: Int, script: String) throws(IoTError)
        -> [String: SignalValue]
    {
        var values: [String: SignalValue] = [:]
        for (name, v) in vs {
            switch v {
            case .null: continue
            case .number(let d): values[name] = .number(d)
            case .bool(let b): values[name] = .bool(b)
            case .string(let s): values[name] = .text(s)
            default: throw malformed(script, "record \(i + 1) with \(kind(v)) as the value of '\(name)'")
            }
        }
        return values
    }

    /// go-iot-platform: `[{Time, DeviceUid, IdentificationCode, DataRows: [{Name, Value}], Nc}]`.
    ///
    /// `Value` strings stay text, and the ingestor converts each to its signal's type (`"21.5"` is 21.5 for
    /// a number signal; `"007"` stays `"007"` for a text signal). A signal registered on first use
    /// (``IoTCore/IngestPolicy/unknownSignals`` `register`) from a string is text: declare number signals
    /// in the product, as go-iot-platform does. `Time` below 1e11 is seconds, else
    /// milliseconds; 0 or missing means "stamp server time".
    static func goIoTPlatform(_ value: ScriptValue, message: InboundMessage, script: String) throws(IoTError)
        -> [DeviceRecord]
    {
        var out: [DeviceRecord] = []
        for (i, element) in try list(value, single: { $0["DataRows"] != nil }, script: script).enumerated() {
            guard case .object(let r) = element else { throw malformed(script, "\(kind(element)) as record \(i + 1)") }
            guard
                let device = try text(r["DeviceUid"], "DeviceUid", i, script).flatMap({ $0.isEmpty ? nil : $0 })
                    ?? message.deviceUID
            else {
                throw malformed(script, "record \(i + 1) without a DeviceUid, for a message without a device")
            }
            let code = try text(r["IdentificationCode"], "IdentificationCode", i, script).flatMap {
                $0.isEmpty ? nil : $0
            }
            var seconds: Double?
            switch r["Time"] {
            case nil, .null: seconds = nil
            case .number(let t): seconds = t
            case .string(let s): seconds = Double(s.trimmingSpaces)
            case let other?: throw malformed(script, "record \(i + 1) with Time \(kind(other))")
            }
            var time: Int64?
            if let t = seconds, t.isFinite, t > 0, t < 9.0e15 { time = Int64((t < 1e11 ? t * 1000 : t).rounded()) }
            var values: [String: SignalValue] = [:]
            switch r["DataRows"] {
            case nil, .null: break
            case .array(let rows):
                for row in rows {
                    guard case .object(let cell) = row, case .string(let name)? = cell["Name"] else {
                        throw malformed(script, "record \(i + 1) with a DataRow without a Name")
                    }
                    switch cell["Value"] {
                    case nil, .null: continue
                    case .number(let d): values[name] = .number(d)
                    case .bool(let b): values[name] = .bool(b)
                    // Kept as the script wrote it: the ingestor converts it to the signal's type ("21.5" for a
                    // number signal is 21.5; "007" for a text signal stays "007", not "7.0").
                    case .string(let s): values[name] = .text(s)
                    case let other?:
                        throw malformed(script, "record \(i + 1) with \(kind(other)) as the Value of '\(name)'")
                    }
                }
            case .object(let o) where o.isEmpty: break
            case let other?: throw malformed(script, "record \(i + 1) with DataRows \(kind(other)); expected a list")
            }
            out.append(DeviceRecord(deviceUID: device, identificationCode: code, time: time, values: values))
        }
        return out
    }

    private static func text(_ v: ScriptValue?, _ field: String, _ i: Int, _ script: String) throws(IoTError) -> String?
    {
        switch v {
        case nil, .null: return nil
        case .string(let s): return s
        case .number(let d): return d == d.rounded() && abs(d) < 9.0e15 ? String(Int64(d)) : String(d)
        case let other?: throw malformed(script, "record \(i + 1) with \(kind(other)) as \(field)")
        }
    }
}

extension String {
    /// Without leading and trailing whitespace.
    var trimmingSpaces: Substring {
        var s = self[...]
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}
