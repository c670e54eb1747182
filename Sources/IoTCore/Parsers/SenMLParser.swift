/// Reads SenML packs in their JSON form (RFC 8428, `application/senml+json`).
///
/// Fields: base `bn` `bt` `bu` `bv` `bs` `bver`; regular `n` `u` `v` `vs` `vb` `vd` `s` `t` `ut`.
///
/// Resolution (RFC 8428 §4.6): a base field applies to its own record and to every later record
/// until a record sets it again. The name is `bn + n`, the time `bt + t`, the value `bv + v` and the
/// sum `bs + s` (a base value or base sum only adds to a record that carries `v` or `s`).
///
/// Mapping to ``DeviceRecord``, from the resolved record alone (name `bn + n`, unit `u` else `bu`), so that a
/// pack and its resolved form (RFC 8428 §5.1.3 and §5.1.4, "the same data") are stored alike:
/// - **Device and measurement.** A name that starts with an RFC 9039 device URN (`urn:dev:<type>:<id>`)
///   names that device; the measurement is what follows the next `:` (`urn:dev:ow:10e2073a01080063:voltage` →
///   device `urn:dev:ow:10e2073a01080063`, measurement `voltage`; the bare URN has no measurement). Otherwise a
///   base name with a non-empty `n` names the device (the base name with one trailing `:`, `/` or `.`
///   stripped) and `n` the measurement; otherwise a name with a `/` is split at its last `/` (`2001:db8::2/`
///   `temperature`, an LwM2M path `/3303/0/5700`); otherwise the name is the measurement of the message's
///   device (``InboundMessage/deviceUID``, which is then required). The device is
///   ``DeviceRecord/identificationCode``; ``DeviceRecord/deviceUID`` is always the message's device (the
///   connected unit), or the named device when the message has none. A named device other than the sender
///   needs a gateway (the ingestor checks).
/// - **Signal.** The measurement; a record without one (the bare device name, §5.1.3, where records differ by
///   unit) is named by its unit (`%RH`, `lon`, `lat`), or `value` without a unit. So records of one name and
///   time that differ by unit are distinct signals, not overwritten.
/// - **Unit.** Kept in ``DeviceRecord/units`` for the signal (a signal registered on first use gets it).
/// - **Time.** Seconds (floating) become milliseconds, rounded to nearest. A resolved time below
///   2^28 s is relative to now (RFC 8428 §4.5.3): it is added to ``InboundMessage/receivedAt``, which
///   the transport must then set. A record with neither `bt` nor `t` has no time and keeps
///   ``DeviceRecord/time`` `nil` (the ingestor stamps server time).
/// - **Values.** `v` → ``SignalValue/number(_:)``, `vs` → ``SignalValue/text(_:)``,
///   `vb` → ``SignalValue/bool(_:)``, `vd` → ``SignalValue/text(_:)`` holding the base64url text
///   as is. A record with only a sum (`s`) stores the sum under the signal name; a record with both
///   a value and a sum stores the sum under `<signal>_sum`. `ut` is read and checked.
/// - **Base-only records.** A record with base fields only (§5.1.7's first record) sets them for the records
///   after it and stores nothing.
/// - **Grouping.** Resolved records with the same device and time merge into one ``DeviceRecord``,
///   in order of first appearance; a later value of the same signal at the same time wins.
///
/// Malformed (``IoTError/Code/malformedPayload``): anything but a JSON array of objects; a field of the
/// wrong type; `bver` that is not a positive integer or is above 10; an unknown field whose name ends
/// in `_` (must-understand, RFC 8428 §4.4; other unknown fields are ignored); a record with more than
/// one of `v`, `vs`, `vb`, `vd`; a record with no value and no sum (a pack of base-only records too); an empty
/// resolved name or one with
/// characters RFC 8428 §4.5.1 does not allow; a relative time without ``InboundMessage/receivedAt``; a
/// record that needs the message's device when it has none.
///
/// ```swift
/// let message = InboundMessage(transport: "coap", deviceUID: "gw-1", contentType: "application/senml+json",
///     text: #"[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.320078429e+09,"n":"temp","v":23.1}]"#)
/// let records = try SenMLParser().parse(message)
/// // [DeviceRecord(deviceUID: "gw-1", identificationCode: "urn:dev:ow:10e2073a01080063",
/// //               time: 1_320_078_429_000, values: ["temp": .number(23.1)], units: [:])]
/// ```
public struct SenMLParser: Parser {
    /// The highest SenML version (`bver`) this parser understands.
    public static let supportedVersion = 10

    /// Creates a parser.
    public init() {}

    /// `"senml"`.
    public var name: String { "senml" }

    /// Parses one SenML JSON pack into records; see ``SenMLParser`` for the mapping rules.
    public func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord] {
        let document = try JSONReader.read(message.payload)
        guard case .array(let elements) = document else {
            throw IoTError.malformed("SenML pack is \(document.kind); expected an array of records")
        }
        var base = Base()
        var records: [DeviceRecord] = []
        var positions: [GroupKey: Int] = [:]
        var firstBaseOnly: (index: Int, name: String)? = nil
        for (i, element) in elements.enumerated() {
            guard case .object(let members) = element else {
                throw IoTError.malformed("SenML record \(i) is \(element.kind); expected an object")
            }
            let record = try Fields(members, record: i, base: &base)
            if record.isBaseOnly {
                if firstBaseOnly == nil { firstBaseOnly = (i, base.bn ?? "") }
                continue
            }
            let resolved = try resolve(record, base: base, index: i, message: message)
            let key = GroupKey(device: resolved.device, time: resolved.time)
            let position: Int
            if let p = positions[key] {
                position = p
            } else {
                position = records.count
                positions[key] = position
                records.append(
                    DeviceRecord(
                        deviceUID: message.deviceUID ?? resolved.device, identificationCode: resolved.device,
                        time: resolved.time, values: [:]))
            }
            for (signal, value) in resolved.values {
                records[position].values[signal] = value
                if let unit = resolved.unit { records[position].units[signal] = unit }
            }
        }
        if records.isEmpty, let (i, name) = firstBaseOnly {
            throw IoTError.malformed(
                "SenML record \(i) (\"\(name)\") has no value; expected one of \"v\", \"vs\", \"vb\", \"vd\" or a sum \"s\""
            )
        }
        return records
    }

    // MARK: Resolution

    private struct GroupKey: Hashable {
        var device: String
        var time: Int64?
    }

    private struct Resolved {
        var device: String
        var time: Int64?
        var values: [(String, SignalValue)]
        var unit: String?
    }

    private func resolve(_ record: Fields, base: Base, index i: Int, message: InboundMessage) throws(IoTError)
        -> Resolved
    {
        let n = record.n ?? ""
        let fullName = (base.bn ?? "") + n
        guard !fullName.isEmpty else {
            throw IoTError.malformed("SenML record \(i) has no name; expected \"n\" or a base name \"bn\"")
        }
        guard Self.isValidName(fullName) else {
            throw IoTError.malformed(
                "SenML record \(i) has name \"\(fullName)\"; expected letters, digits and - : . / _ only, starting with a letter or digit (RFC 8428 §4.5.1)"
            )
        }

        // Device and signal, from the resolved name (see the mapping rules).
        let unit = (record.u ?? base.bu).flatMap { $0.isEmpty ? nil : $0 }
        var named: String? = nil
        var measurement: String
        if let (urn, rest) = Self.deviceURN(fullName) {
            (named, measurement) = (urn, rest)
        } else if let bn = base.bn, !n.isEmpty {
            (named, measurement) = (Self.strippingSeparator(bn), n)
        } else if let slash = fullName.lastIndex(of: "/"), slash != fullName.startIndex {
            (named, measurement) = (String(fullName[..<slash]), String(fullName[fullName.index(after: slash)...]))
        } else {
            measurement = fullName
        }
        let device: String
        if let named, !named.isEmpty {
            device = named
        } else {
            guard let uid = message.deviceUID else {
                throw IoTError.malformed(
                    "no device: SenML record \(i) (\"\(fullName)\") names no device (a urn:dev: name, a base name with \"n\", or a path) and the message has no deviceUID; name one, or have the transport set deviceUID"
                )
            }
            device = uid
        }
        let signal = measurement.isEmpty ? (unit ?? "value") : measurement

        // Time.
        var time: Int64? = nil
        if record.t != nil || base.bt != nil {
            let seconds = (base.bt ?? 0) + (record.t ?? 0)
            let millis = (seconds * 1000).rounded(.toNearestOrAwayFromZero)
            guard millis.isFinite, abs(millis) < 9_007_199_254_740_992 else {
                throw IoTError.malformed(
                    "SenML record \(i) has time \(seconds) s; expected seconds since 1970 within ±2^53 ms")
            }
            if seconds < 268_435_456 {  // 2^28: relative to now (RFC 8428 §4.5.3)
                guard let receivedAt = message.receivedAt else {
                    throw IoTError.malformed(
                        "SenML record \(i) has a relative time (\(seconds) s) but the message has no receivedAt; the transport must set receivedAt"
                    )
                }
                let (sum, overflow) = receivedAt.addingReportingOverflow(Int64(millis))
                guard !overflow else {
                    throw IoTError.malformed("SenML record \(i) has relative time \(seconds) s; expected one that fits")
                }
                time = sum
            } else {
                time = Int64(millis)
            }
        }

        // Values.
        var value: SignalValue? = nil
        if let v = record.v { value = .number((base.bv ?? 0) + v) }
        if let vs = record.vs { value = .text(vs) }
        if let vb = record.vb { value = .bool(vb) }
        if let vd = record.vd { value = .text(vd) }
        let sum = record.s.map { (base.bs ?? 0) + $0 }
        var values: [(String, SignalValue)] = []
        switch (value, sum) {
        case (let value?, let sum?):
            values = [(signal, value), (signal + "_sum", .number(sum))]
        case (let value?, nil):
            values = [(signal, value)]
        case (nil, let sum?):
            values = [(signal, .number(sum))]
        case (nil, nil):
            throw IoTError.malformed(
                "SenML record \(i) (\"\(fullName)\") has no value; expected one of \"v\", \"vs\", \"vb\", \"vd\" or a sum \"s\""
            )
        }
        return Resolved(device: device, time: time, values: values, unit: unit)
    }

    /// The RFC 9039 device URN a name starts with (`urn:dev:<type>:<id>`) and what follows it after a `:`
    /// (empty when nothing does); `nil` for another name.
    private static func deviceURN(_ name: String) -> (device: String, rest: String)? {
        guard name.hasPrefix("urn:dev:") else { return nil }
        let parts = name.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count >= 4, !parts[2].isEmpty, !parts[3].isEmpty else { return nil }
        let device = parts[0...3].joined(separator: ":")
        return (device, parts.count == 5 ? String(parts[4]) : "")
    }

    private static func strippingSeparator(_ name: String) -> String {
        guard let last = name.utf8.last,
            last == UInt8(ascii: ":") || last == UInt8(ascii: "/") || last == UInt8(ascii: ".")
        else { return name }
        return String(name.dropLast())
    }

    /// RFC 8428 §4.5.1: `[A-Za-z0-9][A-Za-z0-9:./_-]*`.
    private static func isValidName(_ name: String) -> Bool {
        var first = true
        for c in name.utf8 {
            let alnum =
                (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
            if first {
                guard alnum else { return false }
                first = false
            } else if !alnum && c != UInt8(ascii: "-") && c != UInt8(ascii: ":") && c != UInt8(ascii: ".")
                && c != UInt8(ascii: "/") && c != UInt8(ascii: "_")
            {
                return false
            }
        }
        return true
    }

    // MARK: Fields

    /// Base fields in effect: each carries forward until a record sets it again.
    private struct Base {
        var bn: String?
        var bt: Double?
        var bu: String?
        var bv: Double?
        var bs: Double?
        var bver: Int = SenMLParser.supportedVersion
    }

    /// The regular fields of one record, type-checked.
    private struct Fields {
        var n: String?
        var u: String?
        var v: Double?
        var vs: String?
        var vb: Bool?
        var vd: String?
        var s: Double?
        var t: Double?
        var ut: Double?

        /// Whether the record has base fields only (it sets them for the records after it).
        var isBaseOnly: Bool {
            n == nil && u == nil && v == nil && vs == nil && vb == nil && vd == nil && s == nil && t == nil
                && ut == nil
        }

        init(_ members: [JSONMember], record i: Int, base: inout Base) throws(IoTError) {
            var valueFields = 0
            for member in members {
                let key = member.key
                let value = member.value
                switch key {
                case "bn": base.bn = try Self.string(value, key, i)
                case "bt": base.bt = try Self.number(value, key, i)
                case "bu": base.bu = try Self.string(value, key, i)
                case "bv": base.bv = try Self.number(value, key, i)
                case "bs": base.bs = try Self.number(value, key, i)
                case "bver":
                    let version = try Self.number(value, key, i)
                    guard version >= 1, version.rounded(.towardZero) == version else {
                        throw IoTError.malformed(
                            "SenML record \(i): \"bver\" is \(version); expected a positive integer version")
                    }
                    guard version <= Double(SenMLParser.supportedVersion) else {
                        throw IoTError.malformed(
                            "SenML record \(i): \"bver\" is \(Int64(exactly: version).map(String.init) ?? "\(version)"); expected at most \(SenMLParser.supportedVersion), the newest version this parser understands"
                        )
                    }
                    base.bver = Int(version)
                case "n": n = try Self.string(value, key, i)
                case "u": u = try Self.string(value, key, i)
                case "v":
                    v = try Self.number(value, key, i)
                    valueFields += 1
                case "vs":
                    vs = try Self.string(value, key, i)
                    valueFields += 1
                case "vb":
                    guard case .bool(let b) = value else { throw Self.wrongType(key, i, value, "a boolean") }
                    vb = b
                    valueFields += 1
                case "vd":
                    vd = try Self.string(value, key, i)
                    valueFields += 1
                case "s": s = try Self.number(value, key, i)
                case "t": t = try Self.number(value, key, i)
                case "ut": ut = try Self.number(value, key, i)
                default:
                    if key.utf8.last == UInt8(ascii: "_") {
                        throw IoTError.malformed(
                            "SenML record \(i) has the must-understand field \"\(key)\" that this parser does not know; expected only fields of RFC 8428 (§4.4)"
                        )
                    }
                // Unknown fields without a trailing "_" are ignored, as RFC 8428 §4.4 requires.
                }
            }
            if valueFields > 1 {
                throw IoTError.malformed(
                    "SenML record \(i) has \(valueFields) value fields; expected at most one of \"v\", \"vs\", \"vb\", \"vd\""
                )
            }
        }

        private static func string(_ value: JSONValue, _ key: String, _ i: Int) throws(IoTError) -> String {
            guard case .string(let s) = value else { throw wrongType(key, i, value, "a string") }
            return s
        }

        private static func number(_ value: JSONValue, _ key: String, _ i: Int) throws(IoTError) -> Double {
            guard case .number(let d) = value else { throw wrongType(key, i, value, "a number") }
            return d
        }

        private static func wrongType(_ key: String, _ i: Int, _ value: JSONValue, _ expected: String) -> IoTError {
            IoTError.malformed("SenML record \(i): \"\(key)\" is \(value.kind); expected \(expected)")
        }
    }
}
