#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the platform may connect to on behalf of a configuration or an API call: notification channels,
/// MQTT brokers, CoAP devices to observe. Public addresses are always allowed; loopback, private (RFC 1918,
/// RFC 4193), link-local, carrier-grade NAT, unspecified and multicast ones only when a host or network of
/// ``allow`` names them, so that an API caller cannot make the server reach into its own network
/// (server-side request forgery).
///
/// ```swift
/// let policy = OutboundPolicy(allow: ["127.0.0.1", "10.1.0.0/16", "broker.plant.lan"])
/// try policy.check(host: "10.1.2.3", what: "MQTT broker")   // allowed by 10.1.0.0/16
/// ```
public struct OutboundPolicy: Sendable, Hashable, Codable {
    /// Hosts (a name, or `*.example.lan` for its subdomains), addresses and networks (`10.0.0.0/8`,
    /// `fd00::/8`) that may be reached although they are not public. Default: none.
    public var allow: [String]

    /// Creates a policy.
    public init(allow: [String] = []) {
        self.allow = allow
    }

    /// Checks a destination: refused when the host, or any address it resolves to, is not public and no entry
    /// of ``allow`` covers the name or that address.
    ///
    /// - Parameters:
    ///   - host: a name or an address (IPv6 with or without brackets).
    ///   - what: what the destination is, for the message (`"MQTT broker"`).
    ///   - allowUnresolvable: whether a name that does not resolve now passes (a configuration file read while
    ///     DNS is away) or is refused (an API call). Default: refused.
    /// - Throws: ``IoTError/Code/forbidden`` naming the host, the address and the setting to change;
    ///   ``IoTError/Code/invalidArgument`` for a name that does not resolve.
    public func check(host: String, what: String, allowUnresolvable: Bool = false) throws(IoTError) {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if allowsName(name) { return }
        let addresses: [IPAddress]
        do {
            addresses = try Self.resolve(name, what: what)
        } catch  where allowUnresolvable {
            return
        }
        for address in addresses where !address.isPublic && !allows(address) {
            throw IoTError(
                .forbidden,
                "\(what) \(host) (\(address)) is a \(address.kind) address; add it (or its network) to the outbound allow-list (iotd: outbound.allow) to reach it"
            )
        }
    }

    private func allowsName(_ name: String) -> Bool {
        let lower = name.lowercased()
        return allow.contains { entry in
            let e = entry.lowercased()
            if e.hasPrefix("*.") { return lower.hasSuffix(e.dropFirst()) }
            return e == lower
        }
    }

    private func allows(_ address: IPAddress) -> Bool {
        allow.contains { entry in IPNetwork(entry)?.contains(address) ?? false }
    }

    /// The addresses `name` resolves to (the address itself when it is one).
    static func resolve(_ name: String, what: String) throws(IoTError) -> [IPAddress] {
        if let literal = IPAddress(name) { return [literal] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &list)
        guard rc == 0, let list else {
            throw IoTError(
                .invalidArgument, "\(what) host \(name) does not resolve: \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var out: [IPAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = list
        while let n = node {
            if let sa = n.pointee.ai_addr {
                if n.pointee.ai_family == AF_INET {
                    sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        let v = UInt32(bigEndian: $0.pointee.sin_addr.s_addr)
                        out.append(IPAddress(bytes: withUnsafeBytes(of: v.bigEndian) { Array($0) }))
                    }
                } else if n.pointee.ai_family == AF_INET6 {
                    sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        out.append(IPAddress(bytes: withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }))
                    }
                }
            }
            node = n.pointee.ai_next
        }
        return out
    }
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address.
struct IPAddress: Hashable, CustomStringConvertible {
    var bytes: [UInt8]

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Parses a textual address.
    init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
            return
        }
        return nil
    }

    var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var v6 = in6_addr()
        withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: bytes) }
        _ = inet_ntop(AF_INET6, &v6, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// An IPv4 address inside an IPv4-mapped IPv6 one (`::ffff:10.0.0.1`).
    var unmapped: IPAddress {
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return IPAddress(bytes: Array(bytes[12...]))
        }
        return self
    }

    /// Why the address is not public, or `nil` for a public one.
    var kind: String {
        let a = unmapped
        let b = a.bytes
        if b.count == 4 {
            switch (b[0], b[1]) {
            case (127, _): return "loopback"
            case (10, _), (172, 16...31), (192, 168): return "private"
            case (169, 254): return "link-local"
            case (100, 64...127): return "carrier-grade NAT"
            case (0, _): return "unspecified"
            case (224...255, _): return "multicast or reserved"
            default: return "public"
            }
        }
        if b.allSatisfy({ $0 == 0 }) { return "unspecified" }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return "loopback" }
        if b[0] & 0xFE == 0xFC { return "private" }
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
        if b[0] == 0xFF { return "multicast" }
        return "public"
    }

    var isPublic: Bool { kind == "public" }
}

/// An address with a prefix length (`10.0.0.0/8`), or a single address.
struct IPNetwork {
    var base: IPAddress
    var prefix: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let base = IPAddress(String(first)) else { return nil }
        let bits = base.bytes.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...bits).contains(p) else { return nil }
            prefix = p
        } else {
            prefix = bits
        }
        self.base = base
    }

    func contains(_ address: IPAddress) -> Bool {
        let a = base.bytes.count == address.bytes.count ? address : address.unmapped
        guard a.bytes.count == base.bytes.count else { return false }
        var remaining = prefix
        for i in 0..<base.bytes.count where remaining > 0 {
            let take = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if a.bytes[i] & mask != base.bytes[i] & mask { return false }
            remaining -= take
        }
        return true
    }
}
