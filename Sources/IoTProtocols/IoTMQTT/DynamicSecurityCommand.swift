import Foundation
public import IoTCore

/// The JSON of Mosquitto's dynamic-security control API (`$CONTROL/dynamic-security/v1`): a request is
/// `{"commands": [...]}`, the answer on `$CONTROL/dynamic-security/v1/response` is
/// `{"responses": [{"command": …, "error"?: …, "correlationData"?: …}]}`, one entry per command, with no
/// `error` when the command succeeded.
///
/// ```swift
/// let request = DynamicSecurityRequest(commands: [
///     .deleteClient(username: "meter-1"),
///     .createRole(name: "iot-device-meter-1", acls: [.init(type: .publishClientSend, topic: "devices/meter-1/#")]),
///     .createClient(username: "meter-1", password: token, clientID: nil, textName: "acme/meter-1",
///                   roles: ["iot-device-meter-1"]),
/// ], correlation: "p-42")
/// let payload = try request.encoded()
/// ```
public struct DynamicSecurityRequest: Sendable, Hashable {
    /// One ACL entry of a role.
    public struct ACL: Sendable, Hashable, Codable {
        /// The dynamic-security ACL types.
        public enum Kind: String, Sendable, Hashable, Codable {
            /// A client publishing a message.
            case publishClientSend
            /// A client receiving a message it subscribed to.
            case publishClientReceive
            /// Subscribing with exactly this filter.
            case subscribeLiteral
            /// Subscribing with a filter this pattern matches.
            case subscribePattern
            /// Unsubscribing with exactly this filter.
            case unsubscribeLiteral
            /// Unsubscribing with a filter this pattern matches.
            case unsubscribePattern
        }
        /// The ACL type.
        public var acltype: Kind
        /// The topic or pattern.
        public var topic: String
        /// Higher priorities are checked first.
        public var priority: Int
        /// Allow or deny.
        public var allow: Bool

        /// Creates an ACL entry.
        public init(type: Kind, topic: String, priority: Int = 0, allow: Bool = true) {
            self.acltype = type
            self.topic = topic
            self.priority = priority
            self.allow = allow
        }
    }

    /// One command.
    public enum Command: Sendable, Hashable {
        /// Creates a client (an account); fails when it exists.
        case createClient(username: String, password: String, clientID: String?, textName: String?, roles: [String])
        /// Deletes a client and disconnects its sessions.
        case deleteClient(username: String)
        /// Creates a role with ACLs; fails when it exists.
        case createRole(name: String, acls: [ACL])
        /// Deletes a role.
        case deleteRole(name: String)
        /// Sets the password of an existing client.
        case setClientPassword(username: String, password: String)
        /// Reads a client (the answer has `data.client`).
        case getClient(username: String)

        /// The command's name, as the broker echoes it.
        public var name: String {
            switch self {
            case .createClient: "createClient"
            case .deleteClient: "deleteClient"
            case .createRole: "createRole"
            case .deleteRole: "deleteRole"
            case .setClientPassword: "setClientPassword"
            case .getClient: "getClient"
            }
        }
    }

    /// The commands, run by the broker in order.
    public var commands: [Command]
    /// Sent as every command's `correlationData` (with `/<index>` appended), so the answer can be told
    /// apart from other clients' answers on the shared response topic.
    public var correlation: String

    /// Creates a request.
    public init(commands: [Command], correlation: String) {
        self.commands = commands
        self.correlation = correlation
    }

    /// The request's JSON.
    public func encoded() throws(IoTError) -> [UInt8] {
        let wire = Wire(
            commands: commands.enumerated().map { i, c in WireCommand(c, correlation: "\(correlation)/\(i)") })
        do {
            return Array(try JSONEncoder().encode(wire))
        } catch {
            throw IoTError(.invalidArgument, "cannot encode a dynamic-security request: \(error)")
        }
    }

    private struct Wire: Encodable {
        var commands: [WireCommand]
    }

    private struct WireRole: Encodable {
        var rolename: String
        var priority: Int
    }

    private struct WireCommand: Encodable {
        var command: String
        var username: String?
        var password: String?
        var clientid: String?
        var textname: String?
        var rolename: String?
        var roles: [WireRole]?
        var acls: [ACL]?
        var correlationData: String

        init(_ command: Command, correlation: String) {
            self.command = command.name
            self.correlationData = correlation
            switch command {
            case .createClient(let username, let password, let clientID, let textName, let roles):
                self.username = username
                self.password = password
                self.clientid = clientID
                self.textname = textName
                self.roles = roles.map { WireRole(rolename: $0, priority: 0) }
            case .deleteClient(let username), .getClient(let username):
                self.username = username
            case .createRole(let name, let acls):
                self.rolename = name
                self.acls = acls
            case .deleteRole(let name):
                self.rolename = name
            case .setClientPassword(let username, let password):
                self.username = username
                self.password = password
            }
        }
    }
}

/// The broker's answer to a ``DynamicSecurityRequest``.
public struct DynamicSecurityResponse: Sendable, Hashable {
    /// The answer to one command.
    public struct Entry: Sendable, Hashable {
        /// The command's name.
        public var command: String
        /// The broker's error text, or `nil` when the command succeeded.
        public var error: String?
        /// The command's correlation data.
        public var correlationData: String?
    }

    /// One entry per command, in order.
    public var entries: [Entry]

    /// Reads a payload from `$CONTROL/dynamic-security/v1/response`.
    ///
    /// - Throws: ``IoTError/Code/malformedPayload`` when it is not the dynamic-security answer shape.
    public init(payload: [UInt8]) throws(IoTError) {
        struct Wire: Decodable {
            struct Entry: Decodable {
                var command: String?
                var error: String?
                var correlationData: String?
            }
            var responses: [Entry]
        }
        do {
            let wire = try JSONDecoder().decode(Wire.self, from: Data(payload))
            entries = wire.responses.map {
                Entry(command: $0.command ?? "", error: $0.error, correlationData: $0.correlationData)
            }
        } catch {
            throw IoTError(.malformedPayload, "the dynamic-security answer cannot be read: \(error)")
        }
    }

    /// Whether this answers the request sent with `correlation` (its first entry carries it).
    public func answers(_ correlation: String) -> Bool {
        entries.first?.correlationData.map { $0.hasPrefix(correlation + "/") } ?? false
    }

    /// Whether a payload answers the request sent with `correlation` (unreadable payloads do not).
    public static func payload(_ payload: [UInt8], answers correlation: String) -> Bool {
        (try? DynamicSecurityResponse(payload: payload))?.answers(correlation) ?? false
    }
}
