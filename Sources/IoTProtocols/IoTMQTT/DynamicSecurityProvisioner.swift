public import IoTCore
public import Logging

/// Carries dynamic-security requests to a Mosquitto broker and brings back the answers.
///
/// ## Implementing a channel
/// - Connect as a client whose role may publish to and subscribe to `$CONTROL/dynamic-security/#`
///   (`mosquitto_ctrl dynsec init` creates such an `admin` account).
/// - ``exchange(_:correlation:timeoutMillis:)`` publishes `request` to ``DynamicSecurityProvisioner/controlTopic``
///   (QoS 1) and returns the first payload on ``DynamicSecurityProvisioner/responseTopic`` for which
///   ``DynamicSecurityResponse/payload(_:answers:)`` holds for `correlation`: every control client
///   sees every answer, so others' answers must be skipped.
/// - Throw ``IoTError/Code/unavailable`` when the broker cannot be reached or refuses the login, and
///   ``IoTError/Code/timeout`` when no answer came in time.
public protocol DynamicSecurityChannel: Sendable {
    /// Sends one request and returns its answer.
    func exchange(_ request: [UInt8], correlation: String, timeout: Duration) async throws(IoTError) -> [UInt8]
}

/// The Mosquitto ``IoTCore/BrokerProvisioner``: keeps one dynamic-security client (the device's
/// account: username and password) and one role (its topic ACLs) per device.
///
/// Mosquitto 2's dynamic-security plugin ships with Debian's `mosquitto`; enable it in `mosquitto.conf`:
///
/// ```
/// plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so
/// plugin_opt_config_file /var/lib/mosquitto/dynamic-security.json
/// ```
///
/// and create the file and its admin account with
/// `mosquitto_ctrl dynsec init /var/lib/mosquitto/dynamic-security.json admin`. Its default ACL access
/// refuses publishing and subscribing, so a device can use only the topics of its role.
///
/// ```swift
/// let provisioner = DynamicSecurityProvisioner(
///     configuration: .init(name: "mosquitto local", policy: BrokerAccountPolicy()), channel: channel)
/// try await provisioner.provision(DeviceIdentity(tenant: "acme", deviceUID: "meter-1"), password: token)
/// // meter-1 may now publish to devices/meter-1/telemetry and subscribe to devices/meter-1/downlink/#
/// try await provisioner.revoke(DeviceIdentity(tenant: "acme", deviceUID: "meter-1"))
/// // its account is gone, and its live connections are closed by the broker
/// ```
///
/// Provisioning replaces an existing account: the broker closes the device's sessions that used the old
/// password, and the device reconnects with the new one.
public final class DynamicSecurityProvisioner: BrokerProvisioner {
    /// `$CONTROL/dynamic-security/v1`: where requests go.
    public static let controlTopic = "$CONTROL/dynamic-security/v1"
    /// `$CONTROL/dynamic-security/v1/response`: where the broker answers.
    public static let responseTopic = "$CONTROL/dynamic-security/v1/response"

    /// What the provisioner creates.
    public struct Configuration: Sendable {
        /// The broker's name in messages. Default `"mosquitto"`.
        public var name: String
        /// Usernames, client ids, topics and served tenants.
        public var policy: BrokerAccountPolicy
        /// The prefix of each device's role name (followed by its username). Default `"iot-device-"`.
        public var rolePrefix: String
        /// How long to wait for the broker's answer. Default 5 s.
        public var timeout: Duration

        /// Creates a configuration; every argument has the default documented on its property.
        public init(
            name: String = "mosquitto", policy: BrokerAccountPolicy = .init(), rolePrefix: String = "iot-device-",
            timeout: Duration = .seconds(5)
        ) {
            self.name = name
            self.policy = policy
            self.rolePrefix = rolePrefix
            self.timeout = timeout
        }

        /// Checks the policy and timeout.
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` saying what to change.
        public func validate() throws(IoTError) {
            try policy.validate()
            guard timeout > .zero else {
                throw IoTError(.invalidArgument, "the dynamic-security timeout must be positive, e.g. 5000 ms")
            }
        }
    }

    /// The configuration in force.
    public let configuration: Configuration
    let channel: any DynamicSecurityChannel
    let logger: Logger

    /// `"<configured name>"`.
    public var name: String { configuration.name }

    /// Creates a provisioner that talks to the broker through `channel`.
    public init(
        configuration: Configuration = .init(), channel: any DynamicSecurityChannel,
        logger: Logger = Logger(label: "iot.mqtt.dynsec")
    ) {
        self.configuration = configuration
        self.channel = channel
        self.logger = logger
    }

    /// The role name of a device.
    public func roleName(for device: DeviceIdentity) -> String {
        configuration.rolePrefix + configuration.policy.username(for: device)
    }

    /// The commands that create (or re-create) a device's account.
    public func provisionCommands(_ device: DeviceIdentity, password: String) -> [DynamicSecurityRequest.Command] {
        let policy = configuration.policy
        let username = policy.username(for: device)
        let role = roleName(for: device)
        var acls: [DynamicSecurityRequest.ACL] = []
        for rule in policy.rules(for: device) {
            switch rule.action {
            case .publish:
                acls.append(.init(type: .publishClientSend, topic: rule.filter))
            case .subscribe:
                acls.append(.init(type: .subscribePattern, topic: rule.filter))
                acls.append(.init(type: .publishClientReceive, topic: rule.filter))
                acls.append(.init(type: .unsubscribePattern, topic: rule.filter))
            }
        }
        return [
            .deleteClient(username: username),
            .deleteRole(name: role),
            .createRole(name: role, acls: acls),
            .createClient(
                username: username, password: password, clientID: policy.clientID(for: device),
                textName: device.description, roles: [role]),
        ]
    }

    /// Creates the device's account and role, replacing any earlier ones.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for a uid that cannot name topics or an empty
    ///   password; the channel's error, or ``IoTCore/IoTError/Code/unavailable`` with the broker's words
    ///   when it refused a command.
    public func provision(_ device: DeviceIdentity, password: String) async throws(IoTError) {
        guard configuration.policy.serves(device.tenant) else { return }
        try configuration.policy.validate(device)
        guard !password.isEmpty else {
            throw IoTError(.invalidArgument, "a broker password cannot be empty; provision with the device's token")
        }
        try await run(provisionCommands(device, password: password), for: device)
        logger.info("device provisioned at the broker", metadata: ["broker": "\(name)", "device": "\(device)"])
    }

    /// Deletes the device's account (closing its connections) and its role; succeeds when neither exists.
    public func revoke(_ device: DeviceIdentity) async throws(IoTError) {
        guard configuration.policy.serves(device.tenant) else { return }
        guard BrokerAccountPolicy.isTopicSafe(device.deviceUID) else { return }  // never provisioned
        try await run(
            [
                .deleteClient(username: configuration.policy.username(for: device)),
                .deleteRole(name: roleName(for: device)),
            ],
            for: device)
        logger.info("device removed at the broker", metadata: ["broker": "\(name)", "device": "\(device)"])
    }

    /// Sends commands in one request; "not found" answers to deletes are success.
    func run(_ commands: [DynamicSecurityRequest.Command], for device: DeviceIdentity) async throws(IoTError) {
        let correlation = "iot-\(UInt64.random(in: 0...UInt64.max))"
        let request = DynamicSecurityRequest(commands: commands, correlation: correlation)
        let answer = try await channel.exchange(
            try request.encoded(), correlation: correlation, timeout: configuration.timeout)
        let response = try DynamicSecurityResponse(payload: answer)
        guard response.entries.count == commands.count else {
            throw IoTError(
                .unavailable,
                "broker \(name) answered \(response.entries.count) of \(commands.count) dynamic-security commands; check that the plugin is loaded"
            )
        }
        for (command, entry) in zip(commands, response.entries) {
            guard let error = entry.error else { continue }
            switch command {
            case .deleteClient where error == "Client not found", .deleteRole where error == "Role not found":
                continue
            default:
                throw IoTError(
                    .unavailable,
                    "broker \(name) refused \(command.name) for device \(device): \(error); check the dynamic-security admin account's role"
                )
            }
        }
    }
}
