import Foundation
import IoTCluster
import IoTCore
import IoTListener
import IoTPostgres
import IoTProtocols
import IoTServer
import IoTStorage

extension PlatformConfiguration {
    /// Checks what the types cannot: each library configuration's own `validate()` (ranges, TLS files that
    /// load), then what spans sections: unique ids, script languages, tenants, and every outbound
    /// destination against ``outbound``.
    ///
    /// - Throws: ``ConfigurationError`` naming the key (`http.maxBodyBytes: 0 is out of range; use 1 to …`).
    public func validate() throws {
        try section("journal") { () throws(IoTError) in try journal.validate() }
        try section("storage") { () throws(IoTError) in try storage.sqlite.validate() }
        if let postgres = storage.postgres {
            try section("storage") { () throws(IoTError) in try postgres.validate() }
            if backup != nil {
                throw ConfigurationError(
                    "backup: copies the SQLite files, and storage.postgres has none; back PostgreSQL up with its own tools (pg_dump, base backups with WAL archiving)"
                )
            }
        }
        if let id = cluster.instanceID, id.isEmpty || id.utf8.count > 64 || id.contains(where: \.isWhitespace) {
            throw ConfigurationError("cluster.instanceID: '\(id)' is not valid; use 1–64 characters without spaces")
        }
        if let redis = cluster.redis {
            guard storage.postgres != nil else {
                throw ConfigurationError(
                    "cluster.redis: instances that share MQTT clients must share their stores too; set storage.postgres"
                )
            }
            do {
                try redis.coordinatorConfiguration(instanceID: "check").validate()
            } catch {
                throw ConfigurationError(error.message)
            }
        }
        try section("ingest") { () throws(IoTError) in try ingest.ingestor.validate() }
        try section("ingest") { () throws(IoTError) in try ingest.gateway.validate() }
        try section("http") { () throws(IoTError) in try http.listener.validate() }
        try section("http.tls") { () throws(IoTError) in try http.listener.tls?.validate() }
        if let listener = coap.listener { try section("coap") { () throws(IoTError) in try listener.validate() } }
        try section("coap") { () throws(IoTError) in try coap.observer.validate() }
        try section("management") { () throws(IoTError) in try management.validate() }
        try section("management.tls") { () throws(IoTError) in try management.tls?.validate() }
        try section("auth") { () throws(IoTError) in try auth.validate() }
        try section("identity") { () throws(IoTError) in try identity.service.validate() }
        if let backup { try section("backup") { () throws(IoTError) in try backup.validate() } }
        try section("devices") { () throws(IoTError) in try devices.validate() }
        if let influxdb = exports.influxdb {
            try section("exports.influxdb") { () throws(IoTError) in try influxdb.validate() }
        }
        if let channel = identity.notificationChannel,
            !notifications.allChannels.contains(where: { $0.name == channel })
        {
            throw ConfigurationError(
                "identity.notificationChannel: '\(channel)' is not a channel of notifications.channels; name an email channel there"
            )
        }
        if let websocket {
            try section("websocket") { () throws(IoTError) in try websocket.listener.validate() }
            try section("websocket.tls") { () throws(IoTError) in try websocket.listener.tls?.validate() }
        }
        for (i, t) in tcp.enumerated() {
            try section("tcp[\(i)]") { () throws(IoTError) in try t.listener.validate() }
            try section("tcp[\(i)].tls") { () throws(IoTError) in try t.listener.tls?.validate() }
        }
        if let modbus {
            try section("modbus") { () throws(IoTError) in try modbus.poller.validate() }
            for device in modbus.devices {
                try section("modbus.devices[\(device.identity)]") { () throws(IoTError) in try device.validate() }
            }
        }
        for p in parsers where !["lua", "javascript", "python"].contains(p.language) {
            throw ConfigurationError("parsers[\(p.name)].language: '\(p.language)' is not lua, javascript or python")
        }
        try brokerAccounts?.validate()
        try section("mqtt") { () throws(IoTError) in try mqtt.manager.validate() }
        var mqttIDs = Set<String>()
        for (i, client) in mqtt.clients.enumerated() {
            guard mqttIDs.insert(client.id).inserted else {
                throw ConfigurationError("mqtt.clients[\(i)].id: '\(client.id)' appears twice")
            }
            do throws(IoTError) {
                _ = try client.transportConfiguration(parsers: nil)
            } catch {
                // Script parser names are only known once the parsers are built.
                if !error.message.contains(".parser:") {
                    throw ConfigurationError("mqtt.clients[\(client.id)]: \(error.message)")
                }
            }
        }
        var observationIDs = Set<String>()
        for (i, o) in coap.observations.enumerated() {
            guard observationIDs.insert(o.id).inserted else {
                throw ConfigurationError("coap.observations[\(i)].id: '\(o.id)' appears twice")
            }
            try section("coap.observations[\(i)]") { () throws(IoTError) in try o.validate() }
        }
        try notifications.validate()
        try checkDestinations()
        for t in tenants {
            guard TenantID(t.id).isValid else {
                throw ConfigurationError("tenants[\(t.id)].id: use 1–64 characters of A–Z a–z 0–9 - _")
            }
            if let u = t.unknownDevices, u != "reject", !u.hasPrefix("register:") {
                throw ConfigurationError("tenants[\(t.id)].unknownDevices: write 'reject' or 'register:<product id>'")
            }
        }
    }

    /// Every outbound destination of the file passes the same policy as those created through the API.
    private func checkDestinations() throws {
        func check(_ host: String?, _ key: String, _ what: String) throws {
            guard let host, !host.isEmpty else { return }
            do throws(IoTError) {
                try outbound.check(host: host, what: what, allowUnresolvable: true)
            } catch {
                throw ConfigurationError("\(key): \(error.message)")
            }
        }
        for channel in notifications.channels ?? [] {
            for (field, url) in [("url", channel.url), ("baseURL", channel.baseURL)] {
                guard let url else { continue }
                try check(
                    URLComponents(string: url)?.host, "notifications.channels[\(channel.name)].\(field)",
                    "notification channel")
            }
        }
        for c in mqtt.clients { try check(c.broker.host, "mqtt.clients[\(c.id)].broker.host", "MQTT broker") }
        for o in coap.observations {
            try check(URLComponents(string: o.uri)?.host, "coap.observations[\(o.id)].uri", "CoAP device")
        }
    }

    /// Runs a library's check and names the section in its message.
    private func section(_ key: String, _ check: () throws(IoTError) -> Void) throws {
        do throws(IoTError) { try check() } catch { throw ConfigurationError(Self.qualify(key, error.message)) }
    }

    /// A library's message under its section: `http` and `maxBodyBytes: 0 is out of range` give
    /// `http.maxBodyBytes: 0 is out of range`; a message that does not start with a key is put after the
    /// section (`http: HTTP ingest port 70000 is out of range`).
    static func qualify(_ section: String, _ message: String) -> String {
        let head = message.prefix { $0.isLetter || $0.isNumber || $0 == "." || $0 == "[" || $0 == "]" }
        let rest = message.dropFirst(head.count)
        let startsWithKey =
            head.first?.isLowercase == true
            && (rest.hasPrefix(": ") || rest.hasPrefix(" is ") || rest.hasPrefix(" must "))
        return startsWithKey ? "\(section).\(message)" : "\(section): \(message)"
    }
}
