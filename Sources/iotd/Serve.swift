import ArgumentParser
import Foundation
import IoTCore
import IoTProtocols
import IoTServer
import IoTStorage
import IoTYAML
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals
import Yams

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the platform from a configuration file until SIGTERM or Ctrl-C (then drain and exit).")

    @Option(name: .shortAndLong, help: "The YAML configuration (see Examples/iotd.example.yaml).")
    var config: String

    @Flag(help: "Only read and check the configuration, print what is wrong or \"configuration OK\", and exit.")
    var check = false

    func run() async throws {
        let (configuration, inlineSecrets) = try loadConfiguration(config)
        let adminKey = try adminAPIKey(configuration)
        if check {
            for key in inlineSecrets {
                print(
                    "warning: \(key) is a secret written inline; give it as \(key)File: <path> or \(key)Env: <variable> (or {file: …} / {env: …} in a map)"
                )
            }
            if adminKey == nil {
                print("warning: no management.adminAPIKey: the management API answers 401 to everything")
            }
            print("configuration OK: \(config)")
            return
        }
        let prometheus = bootstrapObservability(level: configuration.logging?.level)
        let logger = Logger(label: "iotd")
        for key in inlineSecrets {
            logger.warning(
                "a secret is written inline in the configuration; give it as a file or an environment variable",
                metadata: ["key": "\(key)"])
        }
        if adminKey == nil {
            logger.warning("no management.adminAPIKey: the management API answers 401 to everything until one is set")
        }
        let platform = try Platform(
            configuration: configuration, adminAPIKey: adminKey, prometheus: prometheus, logger: logger)
        try await platform.loadParsers(configuration.parsers ?? [])
        try await platform.restoreDefinitions()
        await platform.connectNotifications()
        try await platform.seed(configuration.tenants ?? [])
        try await platform.startMQTTClients(configuration.mqtt?.clients ?? [])
        try platform.startCoAPObservations(configuration.coap?.observations ?? [])
        let group = ServiceGroup(
            configuration: .init(
                services: platform.services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        let announce = Task {
            let httpPort = try await platform.http.listeningPort()
            let apiPort = try await platform.management.listeningPort()
            logger.info("iotd serving", metadata: ["device_http": "\(httpPort)", "management": "\(apiPort)"])
        }
        try await group.run()
        announce.cancel()
    }
}

/// Reads, resolves (secrets from files and the environment, ``ConfigurationSecrets``) and checks a
/// configuration file; also returns the keys of the secrets written inline.
func loadConfiguration(_ path: String) throws -> (DaemonConfiguration, inlineSecrets: [String]) {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ConfigurationError("cannot read \(path): check the path (see Examples/iotd.example.yaml for a template)")
    }
    let configuration: DaemonConfiguration
    let inline: [String]
    do {
        let node = try Yams.compose(yaml: String(decoding: data, as: UTF8.self)) ?? Node([(Node, Node)]())
        let resolved = try ConfigurationSecrets.resolve(node, environment: ProcessInfo.processInfo.environment)
        inline = resolved.inline
        // Base-60 integers made harmless first: Yams traps on one that overflows (SafeYAML).
        configuration = try YAMLDecoder().decode(
            DaemonConfiguration.self, from: SafeYAML.neutralizingBase60(resolved.node))
    } catch let error as ConfigurationError {
        throw ConfigurationError("\(path): \(error.description)")
    } catch {
        throw ConfigurationError("\(path) is not a valid iotd configuration: \(error)")
    }
    try configuration.validate()
    return (configuration, inline)
}

/// The placeholder of `Examples/iotd.example.yaml`, refused as an admin key.
let exampleAdminKey = "change-me-to-a-long-random-string"
/// The shortest admin key accepted.
let minimumAdminKeyLength = 32

/// The admin key: `IOTD_ADMIN_API_KEY`, else `management.adminAPIKey` (also from `adminAPIKeyFile` or
/// `adminAPIKeyEnv`). A key shorter than 32 characters or equal to the example's placeholder is refused.
func adminAPIKey(_ configuration: DaemonConfiguration) throws -> String? {
    let key: String?
    let source: String
    if let fromEnvironment = ProcessInfo.processInfo.environment["IOTD_ADMIN_API_KEY"], !fromEnvironment.isEmpty {
        (key, source) = (fromEnvironment, "IOTD_ADMIN_API_KEY")
    } else {
        (key, source) = (configuration.management?.adminAPIKey, "management.adminAPIKey")
    }
    guard let key else { return nil }
    if key == exampleAdminKey {
        throw ConfigurationError(
            "\(source) is the example's placeholder; generate a key, e.g. openssl rand -base64 32, and keep it in adminAPIKeyFile"
        )
    }
    if key.count < minimumAdminKeyLength {
        throw ConfigurationError(
            "\(source) has \(key.count) characters; use at least \(minimumAdminKeyLength), e.g. openssl rand -base64 32"
        )
    }
    return key
}

/// Bootstraps swift-log (stderr) and swift-metrics (Prometheus); only the daemon does this.
func bootstrapObservability(level: String?) -> PrometheusCollectorRegistry {
    let logLevel = level.flatMap(Logger.Level.init(named:)) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = logLevel
        return handler
    }
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    return registry
}
