/// Identifies a tenant: the unit of isolation. Each tenant has its own database; nothing crosses tenants.
///
/// ```swift
/// let acme: TenantID = "acme"
/// ```
public struct TenantID: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    ExpressibleByStringLiteral, CustomStringConvertible
{
    /// The identifier as stored and shown. Letters, digits, `-` and `_` (see ``isValid``).
    public var rawValue: String

    /// Creates a tenant identifier.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Creates a tenant identifier.
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// Creates a tenant identifier from a literal.
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }
    public static func < (lhs: TenantID, rhs: TenantID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Whether the identifier can name a database file: 1–64 characters of `A–Z a–z 0–9 - _`.
    public var isValid: Bool {
        !rawValue.isEmpty && rawValue.utf8.count <= 64
            && rawValue.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D
                    || c == 0x5F
            }
    }
}

/// Identifies a product (a device type) inside a tenant.
public struct ProductID: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    ExpressibleByStringLiteral, CustomStringConvertible
{
    /// The identifier as stored and shown.
    public var rawValue: String
    /// Creates a product identifier.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Creates a product identifier.
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// Creates a product identifier from a literal.
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
    public static func < (lhs: ProductID, rhs: ProductID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A device as seen by authentication: which tenant it belongs to and its unique id there.
public struct DeviceIdentity: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The tenant that owns the device.
    public var tenant: TenantID
    /// The device's unique id inside the tenant (MQTT client id, HTTP device id, …).
    public var deviceUID: String

    /// Creates an identity.
    public init(tenant: TenantID, deviceUID: String) {
        self.tenant = tenant
        self.deviceUID = deviceUID
    }

    public var description: String { "\(tenant)/\(deviceUID)" }
}
