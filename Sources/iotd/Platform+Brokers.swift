import IoTCore
import IoTProtocols
import Logging

extension Platform {
    /// One provisioner per `brokerAccounts.mosquitto` entry.
    static func brokerProvisioners(_ accounts: BrokerAccountsConfiguration?, logger: Logger) throws -> [any BrokerProvisioner] {
        guard let accounts, let brokers = accounts.mosquitto, !brokers.isEmpty else { return [] }
        throw ConfigurationError(
            "brokerAccounts.mosquitto: provisioning Mosquitto needs the MQTT client, which this build lacks; remove the key")
    }
}
