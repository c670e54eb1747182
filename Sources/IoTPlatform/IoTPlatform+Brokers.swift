import IoTCore
import IoTProtocols
import Logging

extension IoTPlatform {
    /// One dynamic-security provisioner per `brokerAccounts.mosquitto` entry, each over its own control
    /// connection (the platform's MQTT client; it connects on the first request).
    static func brokerProvisioners(_ accounts: BrokerAccountsConfiguration?, logger: Logger) throws
        -> [any BrokerProvisioner]
    {
        guard let accounts, let brokers = accounts.mosquitto else { return [] }
        var provisioners: [any BrokerProvisioner] = []
        for (i, broker) in brokers.enumerated() {
            let name = broker.name ?? "mosquitto \(i)"
            let client = MQTTClient.Configuration(
                host: broker.host ?? "127.0.0.1", port: broker.port ?? 1883,
                clientID: "iotd-dynsec-\(UInt32.random(in: 0...UInt32.max))", username: broker.username,
                password: try BrokerAccountsConfiguration.password(broker, index: i), cleanSession: true)
            let channel: MQTTDynamicSecurityChannel
            do {
                channel = try MQTTDynamicSecurityChannel(configuration: client, logger: logger)
            } catch {
                throw ConfigurationError("brokerAccounts.mosquitto[\(i)]: \(error.message)")
            }
            var configuration = DynamicSecurityProvisioner.Configuration(name: name, policy: accounts.policy)
            if let t = broker.timeoutMillis { configuration.timeout = .milliseconds(t) }
            provisioners.append(
                DynamicSecurityProvisioner(configuration: configuration, channel: channel, logger: logger))
        }
        return provisioners
    }
}
