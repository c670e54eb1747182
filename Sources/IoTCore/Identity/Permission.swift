/// One thing a person or program may do through the management API, named `resource:action`.
///
/// Every operation of the management API needs exactly one permission (its `x-permission` in
/// `openapi.yaml`); a ``Role`` is a set of them. The built-in permissions are the static members; a custom
/// resource added by an integrator may name its own (`Permission("firmware:write")`).
///
/// ```swift
/// let operator: Set<Permission> = [.deviceRead, .dataRead, .alarmRead, .alarmAck]
/// operator.contains(.deviceWrite)   // false: 403 on POST …/devices
/// ```
public struct Permission: RawRepresentable, Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    /// The name, `resource:action`.
    public let rawValue: String

    /// A permission by name.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// A permission by name.
    public init(_ name: String) { self.rawValue = name }

    /// The name.
    public var description: String { rawValue }

    public static func < (a: Permission, b: Permission) -> Bool { a.rawValue < b.rawValue }

    /// Whether the name has the `resource:action` form of lower-case letters, digits and dashes.
    public var isWellFormed: Bool {
        let parts = rawValue.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 2
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 40
                    && part.unicodeScalars.allSatisfy {
                        ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-"
                    }
            }
    }

    /// Reads tenants (a tenant's own record for a tenant user; every tenant for a platform user).
    public static let tenantRead = Permission("tenant:read")
    /// Creates, changes, suspends and deletes tenants: the platform's own administrators only.
    public static let tenantWrite = Permission("tenant:write")
    /// Lists and reads products and devices.
    public static let deviceRead = Permission("device:read")
    /// Creates, changes and deletes products and devices.
    public static let deviceWrite = Permission("device:write")
    /// Issues and revokes device tokens, passwords and certificates.
    public static let credentialWrite = Permission("credential:write")
    /// Reads stored points (latest, series, the live feed).
    public static let dataRead = Permission("data:read")
    /// Exports stored points in bulk (a series as CSV).
    public static let dataExport = Permission("data:export")
    /// Sends to devices (downlink).
    public static let deviceControl = Permission("device:control")
    /// Reads alarm rules and statistics jobs and their results.
    public static let ruleRead = Permission("rule:read")
    /// Adds, changes and removes alarm rules and statistics jobs.
    public static let ruleWrite = Permission("rule:write")
    /// Reads alarms.
    public static let alarmRead = Permission("alarm:read")
    /// Acknowledges and clears alarms.
    public static let alarmAck = Permission("alarm:ack")
    /// Reads notification templates, policies and the outbox.
    public static let notificationRead = Permission("notification:read")
    /// Changes notification templates and policies, retries dead letters, sends notices.
    public static let notificationWrite = Permission("notification:write")
    /// Reads parsers (scripts).
    public static let scriptRead = Permission("script:read")
    /// Adds and removes parsers (scripts).
    public static let scriptWrite = Permission("script:write")
    /// Reads MQTT clients, CoAP observations and Modbus devices.
    public static let transportRead = Permission("transport:read")
    /// Creates and removes MQTT clients, CoAP observations and Modbus devices.
    public static let transportAdmin = Permission("transport:admin")
    /// Reads users, roles, departments and API keys.
    public static let userRead = Permission("user:read")
    /// Creates, changes and removes users, roles, departments and API keys.
    public static let userAdmin = Permission("user:admin")
    /// Reads and exports the audit log.
    public static let auditRead = Permission("audit:read")

    /// Reads the console's big screens (`GET …/dashboards`).
    public static let dashboardRead = Permission("dashboard:read")
    /// Creates, changes and deletes them.
    public static let dashboardWrite = Permission("dashboard:write")

    /// Reads scheduled reports and downloads their runs (`GET …/reports`).
    public static let reportRead = Permission("report:read")
    /// Creates, changes, deletes and runs them.
    public static let reportWrite = Permission("report:write")

    /// Every built-in permission.
    public static let all: Set<Permission> = [
        .tenantRead, .tenantWrite, .deviceRead, .deviceWrite, .credentialWrite, .dataRead, .dataExport, .deviceControl,
        .ruleRead, .ruleWrite, .alarmRead, .alarmAck, .notificationRead, .notificationWrite, .scriptRead, .scriptWrite,
        .transportRead, .transportAdmin, .userRead, .userAdmin, .auditRead, .dashboardRead, .dashboardWrite,
        .reportRead, .reportWrite,
    ]

    /// The permissions that only the platform's own users hold (a tenant role may not grant them): tenants
    /// themselves, and parser scripts, which run in the platform's process for every tenant.
    public static let platformOnly: Set<Permission> = [.tenantWrite, .scriptWrite]
}

/// A named set of permissions. Four are built in (``platformAdmin``, ``tenantAdmin``, ``operator``,
/// ``viewer``); a tenant adds its own.
public struct Role: Sendable, Hashable, Codable {
    /// The role's id (`operator`, `shift-lead`), unique within its tenant.
    public var id: String
    /// What it says on a screen.
    public var name: String
    /// What a holder may do.
    public var permissions: Set<Permission>

    /// Creates a role.
    public init(id: String, name: String? = nil, permissions: Set<Permission>) {
        self.id = id
        self.name = name ?? id
        self.permissions = permissions
    }

    /// Everything, on every tenant.
    public static let platformAdmin = Role(
        id: "platform-admin", name: "Platform administrator", permissions: Permission.all)
    /// Everything within one tenant, but for what only the platform may do (``Permission/platformOnly``).
    public static let tenantAdmin = Role(
        id: "tenant-admin", name: "Tenant administrator",
        permissions: Permission.all.subtracting(Permission.platformOnly))
    /// Runs the tenant's devices day to day: reads everything, changes devices and rules, acknowledges alarms.
    public static let `operator` = Role(
        id: "operator", name: "Operator",
        permissions: Role.viewer.permissions.union([
            .deviceWrite, .credentialWrite, .dataExport, .deviceControl, .ruleWrite, .alarmAck, .notificationWrite,
            .dashboardWrite, .reportWrite,
        ]))
    /// Reads the tenant's devices, data, rules and alarms; changes nothing.
    public static let viewer = Role(
        id: "viewer", name: "Viewer",
        permissions: [
            .tenantRead, .deviceRead, .dataRead, .ruleRead, .alarmRead, .notificationRead, .scriptRead, .transportRead,
            .dashboardRead, .reportRead,
        ])

    private enum CodingKeys: String, CodingKey { case id, name, permissions }

    /// Reads `{"id": …, "name": …, "permissions": […]}`; the name defaults to the id.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let id = try c.decode(String.self, forKey: .id)
        self.init(
            id: id, name: try c.decodeIfPresent(String.self, forKey: .name),
            permissions: try c.decode(Set<Permission>.self, forKey: .permissions))
    }

    /// The built-in roles, by id.
    public static let builtIn: [String: Role] = Dictionary(
        uniqueKeysWithValues: [platformAdmin, tenantAdmin, `operator`, viewer].map { ($0.id, $0) })
}
