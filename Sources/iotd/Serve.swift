import ArgumentParser
import IoTCore
import IoTListener
import IoTPlatform
import IoTServer
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the platform from a configuration file until SIGTERM or Ctrl-C (then drain and exit).")

    @Option(name: .shortAndLong, help: "The YAML configuration (see Examples/iotd.example.yaml).")
    var config: String

    @Flag(help: "Only read and check the configuration, print what is wrong or \"configuration OK\", and exit.")
    var check = false

    func run() async throws {
        MemoryHousekeeping.limitArenas()
        let (configuration, inlineSecrets) = try loadConfiguration(config)
        let hasAdminKey = configuration.management.adminAPIKey != nil
        if check {
            for key in inlineSecrets {
                print(
                    "warning: \(key) is a secret written inline; give it as \(key)File: <path> or \(key)Env: <variable> (or {file: …} / {env: …} in a map)"
                )
            }
            if !hasAdminKey {
                print("warning: no management.adminAPIKey: the management API answers 401 to everything")
            }
            print("configuration OK: \(config)")
            return
        }
        let prometheus = bootstrapObservability(level: configuration.logLevel ?? .info, format: configuration.logFormat)
        let logger = Logger(label: "iotd")
        for key in inlineSecrets {
            logger.warning(
                "a secret is written inline in the configuration; give it as a file or an environment variable",
                metadata: ["key": "\(key)"])
        }
        if !hasAdminKey {
            logger.warning("no management.adminAPIKey: the management API answers 401 to everything until one is set")
        }
        // SIGHUP from here on reloads certificates, parsers, rules and statistics jobs (not the default: exit).
        let hangUps = await UnixSignalsSequence(trapping: .sighup)
        let platform = try IoTPlatform(configuration: configuration, prometheus: prometheus, logger: logger)
        try await platform.prepare()
        let reloader = Task { [config] in
            for await _ in hangUps { await reload(platform, from: config, logger: logger) }
        }
        defer { reloader.cancel() }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: platform), .init(service: MemoryHousekeeping())],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let announce = Task {
            let (http, management) = try await platform.listeningPorts()
            logger.info("iotd serving", metadata: ["device_http": "\(http)", "management": "\(management)"])
        }
        defer {
            announce.cancel()
            print(accountingLine(platform.ingestor.statistics))
        }
        try await group.run()
    }
}

/// Reads the configuration file again and applies what can change while running (``IoTPlatform/reload(_:)``);
/// a file that does not load changes nothing.
func reload(_ platform: IoTPlatform, from path: String, logger: Logger) async {
    let configuration: PlatformConfiguration
    do {
        configuration = try PlatformConfiguration.load(path: path).configuration
    } catch {
        logger.error(
            "SIGHUP: the configuration was not reloaded; fix the file and send SIGHUP again",
            metadata: ["config": "\(path)", "error": "\(error)"])
        return
    }
    let r = await platform.reload(configuration)
    logger.info(
        "SIGHUP: configuration reloaded",
        metadata: [
            "tls_listeners": "\(r.certificates.reloaded)", "parsers": "\(r.parsers)", "rules": "\(r.rules)",
            "rules_removed": "\(r.rulesRemoved)", "statistics_jobs": "\(r.statisticsJobs)",
            "statistics_jobs_removed": "\(r.statisticsJobsRemoved)", "failures": "\(r.failures.count)",
        ])
    for failure in r.failures { logger.error("SIGHUP: not applied", metadata: ["what": "\(failure)"]) }
}

/// The last line `iotd serve` and `iotd demo` print: what the ingestor received and what became of it.
func accountingLine(_ s: IngestStatistics) -> String {
    "stopped: received \(s.received), stored \(s.stored), rejected \(s.rejectedTotal), dropped \(s.droppedTotal), in flight \(s.inFlight)"
}

/// Bootstraps swift-log (stderr, text or JSON lines) and swift-metrics (Prometheus); only the daemon does this.
func bootstrapObservability(level: Logger.Level, format: PlatformConfiguration.LogFormat = .text)
    -> PrometheusCollectorRegistry
{
    LoggingSystem.bootstrap { label in
        switch format {
        case .text:
            var handler = TextLogHandler(label: label)
            handler.logLevel = level
            return handler
        case .json:
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(IoTPlatform.metricsFactory(registry: registry))
    return registry
}
