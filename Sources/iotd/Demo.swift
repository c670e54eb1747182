import ArgumentParser
import Foundation
import IoTCore
import IoTPlatform
import IoTProtocols
import IoTRules
import IoTServer
import Logging
import ServiceLifecycle
import UnixSignals

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the platform with a demo tenant and simulated devices posting through the real HTTP listener.",
        discussion: "Needs no configuration. Prints a live line every second; Ctrl-C or SIGTERM drains and exits.")

    @Option(help: "The data folder (created if missing).") var dir = "./iotd-demo-data"
    @Option(help: "Simulated devices.") var devices = 50
    @Option(help: "Milliseconds between two messages of one device.") var intervalMs = 1_000
    @Option(help: "Device HTTP port (0 picks a free one).") var httpPort = 8080
    @Option(help: "Management API port (0 picks a free one).") var apiPort = 8081
    @Option(help: "Stop after this many seconds (0 runs until a signal).") var duration = 0
    @Flag(help: "Print no live line (for scripts).") var quiet = false

    func run() async throws {
        let prometheus = bootstrapObservability(level: .warning)
        let logger = Logger(label: "iotd.demo")
        var configuration = PlatformConfiguration()
        configuration.dataDirectory = dir
        configuration.http.listener.port = httpPort
        configuration.management.port = apiPort
        let adminKey = randomKey()
        configuration.management.adminAPIKey = adminKey
        let platform = try IoTPlatform(configuration: configuration, prometheus: prometheus, logger: logger)
        try await platform.prepare()
        let fleet = try await DemoFleet.seed(platform: platform, devices: devices)
        // With mosquitto installed, the thermometers also report through a local broker and the MQTT client manager.
        let mqtt = try DemoMQTT.start(directory: dir)
        if let mqtt { _ = try await platform.mqtt.create(mqtt.spec) }

        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: platform)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let running = Task { try await group.run() }
        let (http, api) = try await platform.listeningPorts()
        printBanner(http: http, api: api, adminKey: adminKey, fleet: fleet)
        if let mqtt {
            let thermometers = fleet.devices.filter { $0.product == "thermometer" }.map(\.uid)
            mqtt.simulate(devices: thermometers, intervalMillis: intervalMs)
            print(
                """
                MQTT: a local mosquitto on 127.0.0.1:\(mqtt.port); the thermometers also publish to demo/<uid>/telemetry, and
                the platform's client 'demo-broker' ingests them (GET /api/v1/mqtt/clients). Try:
                  mosquitto_pub -p \(mqtt.port) -q 1 -t demo/\(thermometers.first ?? "thermometer-01")/telemetry -m '{"temperature": 30}'

                """)
            fflush(nil)
        } else {
            print("MQTT: mosquitto is not installed (apt-get install mosquitto), so the demo runs without a broker.\n")
        }

        let simulator = DeviceSimulator(fleet: fleet, port: http, intervalMillis: intervalMs)
        simulator.start()
        let ticker = Task {
            var previous = platform.ingestor.statistics
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                let now = platform.ingestor.statistics
                let latency = simulator.takeLatencies()
                let alarms = await platform.rules.openAlarms(.tenant(DemoFleet.tenant)).filter(\.active).count
                if !quiet {
                    printLive(
                        previous: previous, now: now, latencies: latency, queue: platform.ingestor.queueDepth,
                        alarms: alarms)
                }
                previous = now
            }
        }
        if duration > 0 {
            Task {
                try await Task.sleep(for: .seconds(duration))
                await group.triggerGracefulShutdown()
            }
        }
        let outcome = await running.result
        ticker.cancel()
        await simulator.stop()
        await mqtt?.stop()
        print(accountingLine(platform.ingestor.statistics))
        try outcome.get()
    }

    private func printBanner(http: Int, api: Int, adminKey: String, fleet: DemoFleet) {
        let sample = fleet.devices[0]
        print(
            """
            iotd demo — tenant 'demo', \(fleet.devices.count) simulated devices, data in \(dir)

              device HTTP      http://127.0.0.1:\(http)
              management API   http://127.0.0.1:\(api)   (admin key: \(adminKey))
              metrics          http://127.0.0.1:\(api)/metrics
              console          http://127.0.0.1:\(api)/console/   (sign in with the admin key)

            Send a point as device \(sample.uid) (ThingsBoard form, token in the URL):
              curl -s -X POST http://127.0.0.1:\(http)/api/v1/\(sample.token)/telemetry -H 'Content-Type: application/json' -d '{"temperature": 21.5}'
            Rules: 'too-warm' (temperature > 24 °C, 3 samples in a row), 'silent' (a meter quiet for 5 s);
            statistics: 'temperature-10s' (mean of \(sample.uid) every 10 s, through a Lua calculation).
            Read it back:
              curl -s -H 'Authorization: Bearer \(adminKey)' http://127.0.0.1:\(api)/api/v1/tenants/demo/devices/\(sample.uid)/latest

            """)
        fflush(nil)
    }

    private func printLive(
        previous: IngestStatistics, now: IngestStatistics, latencies: [Double], queue: Int, alarms: Int
    ) {
        let sorted = latencies.sorted()
        let p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
        let line = String(
            format:
                "msgs/s %5d   stored %8d   rejected %4d   dropped %3d   in flight %4d   queue %5d   p99 %6.1f ms   alarms %3d",
            now.received - previous.received, now.stored, now.rejectedTotal, now.droppedTotal, now.inFlight, queue,
            p99 * 1000,
            alarms)
        print(line)
        fflush(nil)
    }
}

func randomKey() -> String {
    let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    var rng = SystemRandomNumberGenerator()
    return String((0..<32).map { _ in alphabet.randomElement(using: &rng)! })
}
