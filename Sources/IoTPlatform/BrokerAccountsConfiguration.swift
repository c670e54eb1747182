import Foundation
import IoTCore

/// `brokerAccounts:` of the configuration: device accounts at MQTT brokers (Mosquitto's dynamic security,
/// EMQX's HTTP authentication). Read from the configuration file; `Examples/iotd.example.yaml` documents
/// each key.
public struct BrokerAccountsConfiguration: Codable, Sendable {
    /// The EMQX HTTP authenticator/authorizer on the management listener.
    struct EMQX: Codable, Sendable {
        var key: String?
        var ignoreUsernames: [String]?
        var ignoreUsernamePrefixes: [String]?
    }
    /// A Mosquitto broker provisioned through its dynamic-security plugin.
    struct Mosquitto: Codable, Sendable {
        var name: String?
        var host: String?
        var port: Int?
        var username: String?
        var password: String?
        var timeoutMillis: Int?
    }

    var username: String?
    var clientID: String?
    var publish: [String]?
    var subscribe: [String]?
    var tenants: [String]?
    var emqx: EMQX?
    var mosquitto: [Mosquitto]?

    var policy: BrokerAccountPolicy {
        var p = BrokerAccountPolicy()
        if let v = username { p.usernameTemplate = v }
        if let v = clientID { p.clientIDTemplate = v }
        if let v = publish { p.publishTopics = v }
        if let v = subscribe { p.subscribeTopics = v }
        if let v = tenants { p.tenants = Set(v.map { TenantID($0) }) }
        return p
    }

    func validate() throws {
        do {
            try policy.validate()
        } catch {
            throw ConfigurationError("brokerAccounts: \(error.message)")
        }
        for (i, m) in (mosquitto ?? []).enumerated() {
            let at = "brokerAccounts.mosquitto[\(i)]"
            if let p = m.port, !(1...65_535).contains(p) {
                throw ConfigurationError("\(at).port: \(p) is not a port (1–65535)")
            }
            if m.username == nil { throw ConfigurationError("\(at).username: name the dynamic-security admin account") }
            if m.password == nil {
                throw ConfigurationError(
                    "\(at): give password, passwordFile or passwordEnv for the dynamic-security admin account")
            }
            if let t = m.timeoutMillis, t <= 0 { throw ConfigurationError("\(at).timeoutMillis: must be positive") }
        }
        if let emqx, emqx.key == nil {
            throw ConfigurationError(
                "brokerAccounts.emqx: give key, keyFile or keyEnv (the broker sends it as \"Authorization: Bearer <key>\")"
            )
        }
    }

    /// The EMQX endpoint key (`keyFile` and `keyEnv` are read when the file is loaded).
    func emqxKey() throws -> String? { emqx?.key }

    /// The admin password of a Mosquitto broker.
    static func password(_ m: Mosquitto, index: Int) throws -> String { m.password ?? "" }
}
