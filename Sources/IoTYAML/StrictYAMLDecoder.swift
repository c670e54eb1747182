public import Yams

/// Decodes a configuration from YAML and refuses the keys no decoder asked for.
///
/// `YAMLDecoder` ignores a key it does not know, so `http: {maxBodyByte: 10}` would run with the default
/// body limit and nobody would know. This decoder watches every key the types' `init(from:)` ask for and,
/// once the value is decoded, reports a key of the document that none asked for, with its path and the
/// nearest known key:
///
/// ```swift
/// let node = try SafeYAML.compose(text) ?? Node([(Node, Node)]())
/// let settings = try StrictYAMLDecoder.decode(Settings.self, from: node)
/// // http.maxBodyByte: unknown key; did you mean maxBodyBytes? (keys here: host, port, maxBodyBytes, tls)
/// ```
///
/// A mapping is checked when a type read it through a keyed container (a struct or a dictionary); a type that
/// reads a mapping in some other way is not second-guessed. A key counts as known when a decoder looked it up
/// (`decodeIfPresent` of a missing key included) or listed it (`allKeys`, as a dictionary does).
public enum StrictYAMLDecoder {
    /// Decodes `type` from `node` and fails on a key that `type` and its parts do not read.
    ///
    /// - Throws: ``ConfigurationDecodingError`` naming the key (`tcp[0].port`) and what to write.
    public static func decode<T: Decodable>(
        _ type: T.Type, from node: Node, userInfo: [CodingUserInfoKey: any Sendable] = [:]
    ) throws(ConfigurationDecodingError) -> T {
        let tracker = KeyTracker()
        let value: T
        do {
            let inner = try YAMLDecoder().decode(DecoderCapture.self, from: node, userInfo: userInfo).decoder
            value = try T(from: TrackingDecoder(inner: inner, path: "", tracker: tracker))
        } catch let error as DecodingError {
            throw ConfigurationDecodingError(error)
        } catch let error as ConfigurationDecodingError {
            throw error
        } catch {
            throw ConfigurationDecodingError(path: "", message: "\(error)")
        }
        if let unknown = tracker.firstUnknownKey(in: node) { throw unknown }
        return value
    }
}

/// A configuration that could not be decoded: where (`http.port`, `tcp[1].framing`) and why.
public struct ConfigurationDecodingError: Error, CustomStringConvertible, Sendable {
    /// The key's path in the document (`""` for the document itself).
    public let path: String
    /// What is wrong and what to write instead.
    public let message: String

    /// An error at `path`.
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `path: message`, or the message alone at the document's root.
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }

    init(_ error: DecodingError) {
        switch error {
        case .typeMismatch(let type, let context):
            self.init(path: Self.path(context.codingPath), message: "expected \(Self.describe(type))")
        case .valueNotFound(let type, let context):
            self.init(path: Self.path(context.codingPath), message: "expected \(Self.describe(type)), found nothing")
        case .keyNotFound(let key, let context):
            self.init(path: Self.path(context.codingPath + [key]), message: "missing; this key is required here")
        case .dataCorrupted(let context):
            self.init(path: Self.path(context.codingPath), message: context.debugDescription)
        @unknown default:
            self.init(path: "", message: "\(error)")
        }
    }

    /// `tcp[0].port` from a decoder's coding path.
    static func path(_ codingPath: [any CodingKey]) -> String {
        var path = ""
        for key in codingPath {
            if let index = key.intValue, Int(key.stringValue) == nil {
                path += "[\(index)]"
            } else {
                path += path.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return path
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Double.Type, is Float.Type: "a number"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type, is UInt64.Type, is UInt32.Type,
            is Int16.Type, is UInt16.Type, is Int8.Type, is UInt8.Type:
            "a whole number"
        default:
            if "\(type)".hasPrefix("Array") {
                "a list"
            } else if "\(type)".hasPrefix("Dictionary") {
                "a map of keys to values"
            } else {
                "a value of type \(type)"
            }
        }
    }
}

/// Hands out Yams' own decoder for the document.
private struct DecoderCapture: Decodable {
    let decoder: any Decoder
    init(from decoder: any Decoder) throws { self.decoder = decoder }
}

/// The keys asked for, by the path of their mapping.
private final class KeyTracker {
    /// Mapping path → the keys decoders looked up or listed there.
    private(set) var asked: [String: Set<String>] = [:]

    func ask(_ key: String, in path: String) { asked[path, default: []].insert(key) }
    func open(_ path: String) { _ = asked[path, default: []] }

    /// The first key of a mapping that was read through a keyed container and that nothing asked for.
    func firstUnknownKey(in node: Node, path: String = "") -> ConfigurationDecodingError? {
        switch node {
        case .mapping(let mapping):
            let known = asked[path]
            for (key, value) in mapping {
                guard let name = key.string else { continue }
                let child = path.isEmpty ? name : "\(path).\(name)"
                if let known, !known.contains(name) {
                    return ConfigurationDecodingError(path: child, message: Self.unknownMessage(name, known: known))
                }
                if let error = firstUnknownKey(in: value, path: child) { return error }
            }
        case .sequence(let sequence):
            for (i, element) in sequence.enumerated() {
                if let error = firstUnknownKey(in: element, path: "\(path)[\(i)]") { return error }
            }
        case .scalar, .alias:
            break
        }
        return nil
    }

    private static func unknownMessage(_ name: String, known: Set<String>) -> String {
        let sorted = known.sorted()
        let nearest = sorted.map { ($0, distance($0.lowercased(), name.lowercased())) }.min { $0.1 < $1.1 }
        var message = "unknown key"
        if let nearest, nearest.1 <= max(2, name.count / 4) { message += "; did you mean \(nearest.0)?" }
        if !sorted.isEmpty { message += " (keys here: \(sorted.joined(separator: ", ")))" }
        return message
    }

    /// Levenshtein distance.
    private static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty else { return b.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}

/// Yams' decoder, with every keyed and unkeyed container reporting the keys asked for.
private struct TrackingDecoder: Decoder {
    let inner: any Decoder
    let path: String
    let tracker: KeyTracker

    var codingPath: [any CodingKey] { inner.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { inner.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let container = try inner.container(keyedBy: type)
        tracker.open(path)
        return KeyedDecodingContainer(TrackingKeyedContainer(inner: container, path: path, tracker: tracker))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        TrackingUnkeyedContainer(inner: try inner.unkeyedContainer(), path: path, tracker: tracker)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        TrackingSingleValueContainer(decoder: self, inner: try inner.singleValueContainer())
    }

    /// Decodes `type` from `decoder` (a value of this document): Yams' scalars as Yams reads them, the rest
    /// through its `init(from:)` with tracking.
    static func decode<T: Decodable>(_ type: T.Type, from decoder: any Decoder, path: String, tracker: KeyTracker)
        throws -> T
    {
        if type is any ScalarConstructible.Type { return try decoder.singleValueContainer().decode(type) }
        return try T(from: TrackingDecoder(inner: decoder, path: path, tracker: tracker))
    }
}

private struct TrackingKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let inner: KeyedDecodingContainer<Key>
    let path: String
    let tracker: KeyTracker

    var codingPath: [any CodingKey] { inner.codingPath }
    var allKeys: [Key] {
        let keys = inner.allKeys
        for key in keys { tracker.ask(key.stringValue, in: path) }
        return keys
    }

    private func child(_ key: Key) -> String { path.isEmpty ? key.stringValue : "\(path).\(key.stringValue)" }
    private func asking(_ key: Key) -> KeyedDecodingContainer<Key> {
        tracker.ask(key.stringValue, in: path)
        return inner
    }

    func contains(_ key: Key) -> Bool { asking(key).contains(key) }
    func decodeNil(forKey key: Key) throws -> Bool { try asking(key).decodeNil(forKey: key) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try asking(key).decode(type, forKey: key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try asking(key).decode(type, forKey: key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try asking(key).decode(type, forKey: key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try asking(key).decode(type, forKey: key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try asking(key).decode(type, forKey: key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try asking(key).decode(type, forKey: key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try asking(key).decode(type, forKey: key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try asking(key).decode(type, forKey: key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try asking(key).decode(type, forKey: key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try asking(key).decode(type, forKey: key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try asking(key).decode(type, forKey: key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try asking(key).decode(type, forKey: key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try asking(key).decode(type, forKey: key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try asking(key).decode(type, forKey: key) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try TrackingDecoder.decode(
            type, from: asking(key).superDecoder(forKey: key), path: child(key), tracker: tracker)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try TrackingDecoder(inner: asking(key).superDecoder(forKey: key), path: child(key), tracker: tracker)
            .container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TrackingDecoder(inner: asking(key).superDecoder(forKey: key), path: child(key), tracker: tracker)
            .unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        TrackingDecoder(inner: try inner.superDecoder(), path: path, tracker: tracker)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        TrackingDecoder(inner: try asking(key).superDecoder(forKey: key), path: child(key), tracker: tracker)
    }
}

private struct TrackingUnkeyedContainer: UnkeyedDecodingContainer {
    var inner: any UnkeyedDecodingContainer
    let path: String
    let tracker: KeyTracker

    var codingPath: [any CodingKey] { inner.codingPath }
    var count: Int? { inner.count }
    var isAtEnd: Bool { inner.isAtEnd }
    var currentIndex: Int { inner.currentIndex }
    private var element: String { "\(path)[\(inner.currentIndex)]" }

    mutating func decodeNil() throws -> Bool { try inner.decodeNil() }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try inner.decode(type) }
    mutating func decode(_ type: String.Type) throws -> String { try inner.decode(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try inner.decode(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try inner.decode(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try inner.decode(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try inner.decode(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try inner.decode(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try inner.decode(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try inner.decode(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try inner.decode(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try inner.decode(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try inner.decode(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try inner.decode(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try inner.decode(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let path = element
        return try TrackingDecoder.decode(type, from: inner.superDecoder(), path: path, tracker: tracker)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        let path = element
        return try TrackingDecoder(inner: inner.superDecoder(), path: path, tracker: tracker).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let path = element
        return try TrackingDecoder(inner: inner.superDecoder(), path: path, tracker: tracker).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let path = element
        return TrackingDecoder(inner: try inner.superDecoder(), path: path, tracker: tracker)
    }
}

private struct TrackingSingleValueContainer: SingleValueDecodingContainer {
    let decoder: TrackingDecoder
    let inner: any SingleValueDecodingContainer

    var codingPath: [any CodingKey] { inner.codingPath }

    func decodeNil() -> Bool { inner.decodeNil() }
    func decode(_ type: Bool.Type) throws -> Bool { try inner.decode(type) }
    func decode(_ type: String.Type) throws -> String { try inner.decode(type) }
    func decode(_ type: Double.Type) throws -> Double { try inner.decode(type) }
    func decode(_ type: Float.Type) throws -> Float { try inner.decode(type) }
    func decode(_ type: Int.Type) throws -> Int { try inner.decode(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try inner.decode(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try inner.decode(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try inner.decode(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try inner.decode(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try inner.decode(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try inner.decode(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try inner.decode(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try inner.decode(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try inner.decode(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if type is any ScalarConstructible.Type { return try inner.decode(type) }
        return try T(from: decoder)
    }
}
