import ArgumentParser
import IoTPlatform
import IoTServer

/// `iotd keys rotate`: a new signing key for access tokens, without downtime.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the keys that sign the management API's access tokens.", subcommands: [Rotate.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write a new signing key first in the key file, keeping the previous ones; a running iotd signs with it within a second, and tokens of the kept keys stay valid until they expire."
        )

        @Option(name: .shortAndLong, help: "The YAML configuration (its identity.signingKeysFile or dataDirectory).")
        var config: String

        @Option(help: "How many keys to keep in all, the new one included (older ones are dropped).")
        var keep = 2

        func run() async throws {
            let (configuration, _) = try loadConfiguration(config)
            let file = configuration.identity.signingKeysFile ?? configuration.dataDirectory + "/identity-keys.json"
            let kid = try SigningKeys.rotate(file: file, keep: keep)
            print("signing key \(kid) written first in \(file) (\(keep) kept)")
        }
    }
}
