import ArgumentParser
import Foundation
import IoTCore
import UnixSignals
import IoTStorage
import IoTServer
import IoTProtocols
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Yams

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the platform from a configuration file until SIGTERM or Ctrl-C (then drain and exit).")

    @Option(name: .shortAndLong, help: "The YAML configuration (see Examples/iotd.example.yaml).")
    var config: String

    @Flag(help: "Only read and check the configuration, print what is wrong or \"configuration OK\", and exit.")
    var check = false

    func run() async throws {
        let configuration = try loadConfiguration(config)
        if check {
            print("configuration OK: \(config)")
            return
        }
        let prometheus = bootstrapObservability(level: configuration.logging?.level)
        let logger = Logger(label: "iotd")
        let adminKey = try adminAPIKey(configuration)
        if adminKey == nil {
            logger.warning("no management.adminAPIKey: the management API answers 401 to everything until one is set")
        }
        let platform = try Platform(configuration: configuration, adminAPIKey: adminKey, prometheus: prometheus, logger: logger)
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

func loadConfiguration(_ path: String) throws -> DaemonConfiguration {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ConfigurationError("cannot read \(path): check the path (see Examples/iotd.example.yaml for a template)")
    }
    let configuration: DaemonConfiguration
    do {
        configuration = try YAMLDecoder().decode(DaemonConfiguration.self, from: data)
    } catch {
        throw ConfigurationError("\(path) is not a valid iotd configuration: \(error)")
    }
    try configuration.validate()
    return configuration
}

func adminAPIKey(_ configuration: DaemonConfiguration) throws -> String? {
    if let key = ProcessInfo.processInfo.environment["IOTD_ADMIN_API_KEY"], !key.isEmpty { return key }
    if let file = configuration.management?.adminAPIKeyFile {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError("management.adminAPIKeyFile: cannot read \(file)")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    return configuration.management?.adminAPIKey
}

/// Bootstraps swift-log (stderr) and swift-metrics (Prometheus); only the daemon does this.
func bootstrapObservability(level: String?) -> PrometheusCollectorRegistry {
    let logLevel = level.flatMap(LogLevelName) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = logLevel
        return handler
    }
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    return registry
}
