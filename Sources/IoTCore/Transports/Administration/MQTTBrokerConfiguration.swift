/// The MQTT protocol version an MQTT client speaks to its broker.
public enum MQTTProtocolVersion: String, Sendable, Codable, Hashable {
    /// MQTT 3.1.1 (the default).
    case v311 = "3.1.1"
    /// MQTT 5. A session that outlives the connection needs ``MQTTBrokerConfiguration/sessionExpiry``.
    case v5 = "5"
}

/// TLS from an MQTT client to its broker. The broker's certificate is verified by default.
public struct MQTTBrokerTLS: Sendable, Codable, Hashable {
    /// A PEM file of the certificate authorities to trust; `nil` with ``caDirectory`` `nil` trusts the
    /// operating system's authorities.
    public var caFile: String?
    /// A directory of PEM certificate authorities (hashed names, as `c_rehash` makes them).
    public var caDirectory: String?
    /// The client certificate (PEM), for brokers that authenticate clients by certificate.
    public var certificateFile: String?
    /// The client certificate's private key (PEM, unencrypted).
    public var keyFile: String?
    /// Whether the broker's host name must match its certificate. Default `true`; turn it off only
    /// for test brokers whose certificate names another host. The chain is verified either way.
    public var verifyHostname: Bool

    /// Creates a TLS configuration; with no arguments, the system's authorities are trusted.
    public init(
        caFile: String? = nil, caDirectory: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
        verifyHostname: Bool = true
    ) {
        self.caFile = caFile
        self.caDirectory = caDirectory
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.verifyHostname = verifyHostname
    }
}

/// Where and how an MQTT client connects to its broker.
///
/// Durable ingest needs a fixed ``clientID`` and ``cleanSession`` `false` (the default): the broker then
/// keeps QoS 1 and 2 messages for the client while it is away.
public struct MQTTBrokerConfiguration: Sendable, Codable, Hashable {
    /// The broker's host name or address. Default `127.0.0.1`.
    public var host: String
    /// The broker's port. Default 1883 (use 8883 with ``tls``).
    public var port: Int
    /// The MQTT client id. Must be set, and stable across restarts, when ``cleanSession`` is `false`.
    public var clientID: String
    /// The user name, when the broker wants one.
    public var username: String?
    /// The password, with ``username``.
    public var password: String?
    /// The protocol version. Default 3.1.1.
    public var protocolVersion: MQTTProtocolVersion
    /// Keep-alive interval, whole seconds from 5 to 65 535 (`keepAliveSeconds` in a file or the API).
    /// Default 60 s.
    public var keepAlive: Duration
    /// Whether the broker drops the session on disconnect. Default `false` (a persistent session).
    public var cleanSession: Bool
    /// MQTT 5 only: how long the broker keeps the session after a disconnect, in whole seconds
    /// (`sessionExpirySeconds`). Default one day; ignored with ``cleanSession``.
    public var sessionExpiry: Duration
    /// TLS settings; `nil` connects in plain TCP.
    public var tls: MQTTBrokerTLS?
    /// The first reconnect delay (`reconnectDelayMillis`); it doubles after each failed attempt (with ±25 %
    /// jitter) up to ``maxReconnectDelay``. Default 500 ms.
    public var reconnectDelay: Duration
    /// The longest reconnect delay (`maxReconnectDelayMillis`). Default 30 s.
    public var maxReconnectDelay: Duration

    /// Creates a configuration with the documented defaults.
    public init(
        host: String = "127.0.0.1", port: Int = 1883, clientID: String = "", username: String? = nil,
        password: String? = nil, protocolVersion: MQTTProtocolVersion = .v311, keepAlive: Duration = .seconds(60),
        cleanSession: Bool = false, sessionExpiry: Duration = .seconds(86_400), tls: MQTTBrokerTLS? = nil,
        reconnectDelay: Duration = .milliseconds(500), maxReconnectDelay: Duration = .seconds(30)
    ) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.username = username
        self.password = password
        self.protocolVersion = protocolVersion
        self.keepAlive = keepAlive
        self.cleanSession = cleanSession
        self.sessionExpiry = sessionExpiry
        self.tls = tls
        self.reconnectDelay = reconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
    }

    /// Checks what the types cannot; the error names the field and what to write.
    public func validate() throws(IoTError) {
        func fail(_ message: String) throws(IoTError) -> Never { throw IoTError(.invalidArgument, message) }
        if host.isEmpty { try fail("host is empty: name the broker (for example 127.0.0.1)") }
        if !(1...65_535).contains(port) { try fail("port \(port) is not a TCP port (1–65535)") }
        if clientID.isEmpty && !cleanSession {
            try fail("clientID is empty: a persistent session (cleanSession false) needs a fixed client id")
        }
        if clientID.utf8.count > 65_535 { try fail("clientID is longer than 65535 bytes") }
        if !(5...65_535).contains(keepAlive.inMilliseconds / 1000) || keepAlive.inMilliseconds % 1000 != 0 {
            try fail("keepAliveSeconds must be a whole number of seconds, 5–65535")
        }
        if sessionExpiry < .zero || sessionExpiry.inMilliseconds / 1000 > Int64(UInt32.max) {
            try fail("sessionExpirySeconds must be 0–4294967295")
        }
        if password != nil && username == nil { try fail("password without username: set username too") }
        if reconnectDelay < .milliseconds(1) || maxReconnectDelay < reconnectDelay
            || maxReconnectDelay > .seconds(86_400)
        {
            try fail(
                "reconnect delays: need 1 ≤ reconnectDelayMillis ≤ maxReconnectDelayMillis ≤ 86400000 (one day)")
        }
        if let tls, (tls.certificateFile == nil) != (tls.keyFile == nil) {
            try fail("tls: certificateFile and keyFile go together")
        }
    }
}

extension MQTTBrokerConfiguration {
    enum CodingKeys: String, CodingKey {
        case host, port, clientID, username, password, protocolVersion, keepAliveSeconds, cleanSession
        case sessionExpirySeconds, tls, reconnectDelayMillis, maxReconnectDelayMillis
    }

    /// Decodes a configuration; every key is optional and takes the documented default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        self.init(
            host: try c.decodeIfPresent(String.self, forKey: .host) ?? d.host,
            port: try c.decodeIfPresent(Int.self, forKey: .port) ?? d.port,
            clientID: try c.decodeIfPresent(String.self, forKey: .clientID) ?? d.clientID,
            username: try c.decodeIfPresent(String.self, forKey: .username),
            password: try c.decodeIfPresent(String.self, forKey: .password),
            protocolVersion: try c.decodeIfPresent(MQTTProtocolVersion.self, forKey: .protocolVersion)
                ?? d.protocolVersion,
            keepAlive: try c.decodeSeconds(.keepAliveSeconds, or: d.keepAlive),
            cleanSession: try c.decodeIfPresent(Bool.self, forKey: .cleanSession) ?? d.cleanSession,
            sessionExpiry: try c.decodeSeconds(.sessionExpirySeconds, or: d.sessionExpiry),
            tls: try c.decodeIfPresent(MQTTBrokerTLS.self, forKey: .tls),
            reconnectDelay: try c.decodeMillis(.reconnectDelayMillis, or: d.reconnectDelay),
            maxReconnectDelay: try c.decodeMillis(.maxReconnectDelayMillis, or: d.maxReconnectDelay))
    }

    /// Encodes the configuration without the password (reports and the API never show it).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(host, forKey: .host)
        try c.encode(port, forKey: .port)
        try c.encode(clientID, forKey: .clientID)
        try c.encodeIfPresent(username, forKey: .username)
        try c.encode(protocolVersion, forKey: .protocolVersion)
        try c.encode(keepAlive.inMilliseconds / 1000, forKey: .keepAliveSeconds)
        try c.encode(cleanSession, forKey: .cleanSession)
        try c.encode(sessionExpiry.inMilliseconds / 1000, forKey: .sessionExpirySeconds)
        try c.encodeIfPresent(tls, forKey: .tls)
        try c.encodeMillis(reconnectDelay, forKey: .reconnectDelayMillis)
        try c.encodeMillis(maxReconnectDelay, forKey: .maxReconnectDelayMillis)
    }
}

extension MQTTBrokerTLS {
    enum CodingKeys: String, CodingKey { case caFile, caDirectory, certificateFile, keyFile, verifyHostname }

    /// Decodes TLS settings; `verifyHostname` defaults to `true`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            caFile: try c.decodeIfPresent(String.self, forKey: .caFile),
            caDirectory: try c.decodeIfPresent(String.self, forKey: .caDirectory),
            certificateFile: try c.decodeIfPresent(String.self, forKey: .certificateFile),
            keyFile: try c.decodeIfPresent(String.self, forKey: .keyFile),
            verifyHostname: try c.decodeIfPresent(Bool.self, forKey: .verifyHostname) ?? true)
    }
}
