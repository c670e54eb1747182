import Foundation
public import HTTPTypes
public import Hummingbird
public import IoTCore

/// The reverse proxies (nginx, a load balancer) whose `X-Forwarded-For` a listener believes: addresses and CIDR
/// blocks, IPv4 or IPv6 (`["127.0.0.1", "10.0.0.0/8", "fd00::/8"]`). Empty by default: the header is ignored and
/// the client is the TCP peer.
///
/// A request from a trusted proxy is attributed to the right-most address of `X-Forwarded-For` that is not itself
/// a trusted proxy (what a client writes on the left of the list is not believed), so per-address attempt limits
/// and the audit log see the real client. A trusted proxy is also exempt from the per-address connection cap
/// (``ListenerLimits/maxConnectionsPerAddress``): all its clients arrive from its one address.
public struct TrustedProxies: Sendable, Hashable, Codable {
    /// The entries as written.
    public let entries: [String]
    private let blocks: [Block]

    private struct Block: Hashable {
        var bytes: [UInt8]
        var prefix: Int
    }

    /// No trusted proxy: `X-Forwarded-For` is ignored.
    public init() {
        entries = []
        blocks = []
    }

    /// Parses `entries`.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming an entry that is neither an address nor a CIDR
    ///   block.
    public init(_ entries: [String]) throws(IoTError) {
        var blocks: [Block] = []
        for entry in entries {
            let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
            guard let bytes = parts.first.flatMap(Self.bytes) else {
                throw IoTError(
                    .invalidArgument, "trustedProxies: '\(entry)' is not an IP address or a CIDR block (10.0.0.0/8)")
            }
            let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
            guard let prefix, (0...bytes.count * 8).contains(prefix) else {
                throw IoTError(.invalidArgument, "trustedProxies: '\(entry)' has no valid prefix length")
            }
            blocks.append(Block(bytes: bytes, prefix: prefix))
        }
        self.entries = entries
        self.blocks = blocks
    }

    /// Whether no proxy is trusted.
    public var isEmpty: Bool { blocks.isEmpty }

    /// Whether `address` is a trusted proxy.
    public func contains(_ address: String) -> Bool {
        guard !blocks.isEmpty, let bytes = Self.bytes(address) else { return false }
        return blocks.contains { block in
            guard block.bytes.count == bytes.count else { return false }
            var bits = block.prefix
            for i in 0..<bytes.count where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if bytes[i] & mask != block.bytes[i] & mask { return false }
                bits -= 8
            }
            return true
        }
    }

    /// The client of a request that arrived from `peer` with these header fields: ``client(peer:forwardedFor:)``
    /// of their `X-Forwarded-For` values, or `peer` when no proxy is trusted or the request names none.
    public func client(peer: String, fields: HTTPFields) -> String {
        guard !blocks.isEmpty else { return peer }
        let forwarded = fields[values: Self.forwardedFor]
        return forwarded.isEmpty ? peer : client(peer: peer, forwardedFor: forwarded)
    }

    private static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    /// The client of a request that arrived from `peer` with these `X-Forwarded-For` values: `peer` itself unless
    /// it is trusted; else the right-most forwarded address that is not trusted (or the left-most, when all are).
    public func client(peer: String, forwardedFor: [String]) -> String {
        guard contains(peer), !forwardedFor.isEmpty else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        for hop in hops.reversed() where !contains(hop) { return Self.bytes(hop) == nil ? peer : hop }
        return hops.first ?? peer
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address (an IPv4-mapped IPv6 address as IPv4).
    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return Array(bytes[12...])
        }
        return bytes
    }

    /// Decodes a list of addresses and CIDR blocks.
    public init(from decoder: any Decoder) throws {
        let entries = try decoder.singleValueContainer().decode([String].self)
        do {
            try self.init(entries)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    /// Encodes the entries as written.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(entries)
    }
}

/// A request context whose client address a ``ForwardedForMiddleware`` may replace.
public protocol ClientAddressContext: RequestContext {
    /// The client's IP address: the TCP peer, or the client a trusted proxy forwarded for.
    var clientAddress: String { get set }
}

/// Replaces the context's client address with the one a trusted proxy forwarded (``TrustedProxies``), before
/// the handlers and the limits that key on it run.
public struct ForwardedForMiddleware<Context: ClientAddressContext>: RouterMiddleware {
    let proxies: TrustedProxies

    /// Believes the `X-Forwarded-For` of `proxies`.
    public init(proxies: TrustedProxies) { self.proxies = proxies }

    /// Sets `context.clientAddress` and calls `next`.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard !proxies.isEmpty else { return try await next(request, context) }
        var context = context
        context.clientAddress = proxies.client(peer: context.clientAddress, fields: request.headers)
        return try await next(request, context)
    }
}
