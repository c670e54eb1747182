import IoTCore

// Readable Codable forms for configuration files and the management API:
//   DeviceSelector  {"device": "pump-1"} | {"product": "pump"}
//   Debounce        {"count": 3} | {"durationMillis": 60000}
//   Window          {"count": 10} | {"durationMillis": 300000}
//   CatchUpPolicy   {"policy": "none"} | {"policy": "latest"} | {"policy": "all", "max": 24}
//   AlarmRule       {"kind": "range" | "joint" | "offline", …the rule's own fields}

private struct Key: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

private func corrupt(_ decoder: any Decoder, _ what: String) -> DecodingError {
    .dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: what))
}

extension DeviceSelector {
    /// Decodes `{"device": uid}` or `{"product": id}`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        if let d = try c.decodeIfPresent(String.self, forKey: Key("device")) {
            self = .device(d)
        } else if let p = try c.decodeIfPresent(String.self, forKey: Key("product")) {
            self = .product(.init(p))
        } else {
            throw corrupt(decoder, "a device selector needs \"device\" or \"product\"")
        }
    }

    /// Encodes `{"device": uid}` or `{"product": id}`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch self {
        case .device(let d): try c.encode(d, forKey: Key("device"))
        case .product(let p): try c.encode(p.rawValue, forKey: Key("product"))
        }
    }
}

/// The `{"count": n}` or `{"durationMillis": ms}` form shared by ``Debounce`` and ``Window``.
private enum CountOrDuration {
    case count(Int)
    case duration(Int64)

    init(from decoder: any Decoder, what: String) throws {
        let c = try decoder.container(keyedBy: Key.self)
        if let n = try c.decodeIfPresent(Int.self, forKey: Key("count")) {
            self = .count(n)
        } else if let d = try c.decodeIfPresent(Int64.self, forKey: Key("durationMillis")) {
            self = .duration(d)
        } else {
            throw corrupt(decoder, "\(what) needs \"count\" or \"durationMillis\"")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch self {
        case .count(let n): try c.encode(n, forKey: Key("count"))
        case .duration(let d): try c.encode(d, forKey: Key("durationMillis"))
        }
    }
}

extension Debounce {
    /// Decodes `{"count": n}` or `{"durationMillis": ms}`.
    public init(from decoder: any Decoder) throws {
        switch try CountOrDuration(from: decoder, what: "a debounce") {
        case .count(let n): self = .count(n)
        case .duration(let d): self = .duration(millis: d)
        }
    }

    /// Encodes `{"count": n}` or `{"durationMillis": ms}`.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .count(let n): try CountOrDuration.count(n).encode(to: encoder)
        case .duration(let d): try CountOrDuration.duration(d).encode(to: encoder)
        }
    }
}

extension Window {
    /// Decodes `{"count": n}` or `{"durationMillis": ms}`.
    public init(from decoder: any Decoder) throws {
        switch try CountOrDuration(from: decoder, what: "a window") {
        case .count(let n): self = .count(n)
        case .duration(let d): self = .duration(millis: d)
        }
    }

    /// Encodes `{"count": n}` or `{"durationMillis": ms}`.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .count(let n): try CountOrDuration.count(n).encode(to: encoder)
        case .duration(let d): try CountOrDuration.duration(d).encode(to: encoder)
        }
    }
}

/// The `{"language", "source", "function"}` form shared by a joint rule's ``Condition`` and a statistics
/// job's ``Calculation``; only their script case can be encoded.
struct ScriptCoding {
    private enum CodingKeys: String, CodingKey { case language, source, function }

    static func decode(from decoder: any Decoder, defaultFunction: String) throws -> (
        language: String, source: String, function: String
    ) {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        return (
            try c.decode(String.self, forKey: .language), try c.decode(String.self, forKey: .source),
            try c.decodeIfPresent(String.self, forKey: .function) ?? defaultFunction
        )
    }

    static func encode(language: String, source: String, function: String, to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(language, forKey: .language)
        try c.encode(source, forKey: .source)
        try c.encode(function, forKey: .function)
    }

    static func closureError(_ value: Any, _ what: String, _ encoder: any Encoder) -> EncodingError {
        .invalidValue(
            value,
            .init(codingPath: encoder.codingPath, debugDescription: "a closure \(what) cannot be encoded; use a script")
        )
    }
}

extension CatchUpPolicy {
    /// Decodes `{"policy": "none" | "latest" | "all", "max": n}`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        switch try c.decode(String.self, forKey: Key("policy")) {
        case "none": self = .none
        case "latest": self = .latest
        case "all": self = .all(max: try c.decodeIfPresent(Int.self, forKey: Key("max")) ?? 100)
        case let other: throw corrupt(decoder, "unknown catch-up policy '\(other)'; use none, latest or all")
        }
    }

    /// Encodes `{"policy": …}`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch self {
        case .none: try c.encode("none", forKey: Key("policy"))
        case .latest: try c.encode("latest", forKey: Key("policy"))
        case .all(let n):
            try c.encode("all", forKey: Key("policy"))
            try c.encode(n, forKey: Key("max"))
        }
    }
}

extension AlarmRule: Codable {
    /// Decodes `{"kind": "range" | "joint" | "offline", …}` with the rule's fields beside `kind`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        switch try c.decode(String.self, forKey: Key("kind")) {
        case "range": self = .range(try RangeRule(from: decoder))
        case "joint": self = .joint(try JointRule(from: decoder))
        case "offline": self = .offline(try OfflineRule(from: decoder))
        case let other: throw corrupt(decoder, "unknown rule kind '\(other)'; use range, joint or offline")
        }
    }

    /// Encodes the rule's fields with `kind` beside them.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch self {
        case .range(let r):
            try c.encode("range", forKey: Key("kind"))
            try r.encode(to: encoder)
        case .joint(let r):
            try c.encode("joint", forKey: Key("kind"))
            try r.encode(to: encoder)
        case .offline(let r):
            try c.encode("offline", forKey: Key("kind"))
            try r.encode(to: encoder)
        }
    }
}
