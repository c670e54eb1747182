import Foundation
import IoTTesting
import Synchronization

/// Simulated devices posting telemetry through the real HTTP listener, on their own threads
/// (blocking sockets never run on Swift's cooperative pool). One device in every 25 is faulty and
/// sends a malformed payload now and then, so the demo shows rejections being counted.
final class DeviceSimulator: Sendable {
    private let fleet: DemoFleet
    private let port: Int
    private let intervalMillis: Int
    private let stopped = Mutex(false)
    private let latencies = Mutex<[Double]>([])
    private let running = Mutex(0)

    init(fleet: DemoFleet, port: Int, intervalMillis: Int) {
        self.fleet = fleet
        self.port = port
        self.intervalMillis = intervalMillis
    }

    func start() {
        let lanes = min(8, fleet.devices.count)
        for lane in 0..<lanes {
            let devices = fleet.devices.enumerated().filter { $0.offset % lanes == lane }.map(\.element)
            let thread = Thread { [self] in self.loop(devices) }
            thread.name = "demo-devices-\(lane)"
            running.withLock { $0 += 1 }
            thread.start()
        }
    }

    func stop() {
        stopped.withLock { $0 = true }
        while running.withLock({ $0 }) > 0 { usleep(5_000) }
    }

    /// The request latencies (seconds) since the last call.
    func takeLatencies() -> [Double] {
        latencies.withLock { l in
            defer { l.removeAll(keepingCapacity: true) }
            return l
        }
    }

    private func loop(_ devices: [DemoFleet.SimulatedDevice]) {
        defer { running.withLock { $0 -= 1 } }
        var client: LoopbackHTTPClient?
        var tick = 0
        let start = Date()
        while !stopped.withLock({ $0 }) {
            for (i, device) in devices.enumerated() {
                if stopped.withLock({ $0 }) { return }
                let faulty = device.uid.hasSuffix("-05") && tick % 10 == 9
                let (path, headers, body) = request(for: device, tick: tick, index: i, faulty: faulty)
                let t0 = Date()
                do {
                    if client == nil { client = try LoopbackHTTPClient(port: port) }
                    _ = try client!.request("POST", path, headers: headers, body: Array(body.utf8))
                    let elapsed = Date().timeIntervalSince(t0)
                    latencies.withLock { $0.append(elapsed) }
                } catch {
                    client = nil  // reconnect on the next request
                }
            }
            tick += 1
            let next = start.addingTimeInterval(Double(tick * intervalMillis) / 1000)
            let wait = next.timeIntervalSinceNow
            if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
        }
    }

    private func request(for device: DemoFleet.SimulatedDevice, tick: Int, index: Int, faulty: Bool) -> (
        String, [String: String], String
    ) {
        if faulty {
            return ("/api/v1/\(device.token)/telemetry", [:], #"{"temperature": 21.5,"#)
        }
        let phase = Double(tick + index * 7) / 30
        switch device.product {
        case "thermometer":
            // ThingsBoard form: token in the URL.
            let body = String(
                format: #"{"temperature": %.2f, "humidity": %.1f}"#, 21 + 4 * sin(phase), 45 + 10 * cos(phase))
            return ("/api/v1/\(device.token)/telemetry", [:], body)
        case "door":
            let body = #"{"open": \#((tick + index) % 20 < 3)}"#
            return ("/api/v1/devices/\(device.uid)/telemetry", ["Authorization": "Bearer \(device.token)"], body)
        default:
            // SenML from the meters.
            let body = String(
                format: #"[{"bn":"%@:","n":"power","u":"W","v":%.1f},{"n":"energy","u":"kWh","v":%.3f}]"#, device.uid,
                900 + 300 * sin(phase), Double(tick) * 0.25)
            return (
                "/api/v1/devices/\(device.uid)/telemetry",
                ["Authorization": "Bearer \(device.token)", "Content-Type": "application/senml+json"], body
            )
        }
    }
}
