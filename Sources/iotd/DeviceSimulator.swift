import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// Simulated devices posting telemetry through the real HTTP listener with AsyncHTTPClient (keep-alive
/// connections to 127.0.0.1). One device in every 25 is faulty and sends a malformed payload now and then,
/// so the demo shows rejections being counted.
final class DeviceSimulator: Sendable {
    private let fleet: DemoFleet
    private let port: Int
    private let intervalMillis: Int
    private let latencies = Mutex<[Double]>([])
    private let lanes = Mutex<[Task<Void, Never>]>([])

    init(fleet: DemoFleet, port: Int, intervalMillis: Int) {
        self.fleet = fleet
        self.port = port
        self.intervalMillis = intervalMillis
    }

    func start() {
        let count = min(8, fleet.devices.count)
        let tasks = (0..<count).map { lane in
            let devices = fleet.devices.enumerated().filter { $0.offset % count == lane }.map(\.element)
            return Task { await self.loop(devices) }
        }
        lanes.withLock { $0 = tasks }
    }

    func stop() async {
        let tasks = lanes.withLock { $0 }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    /// The request latencies (seconds) since the last call.
    func takeLatencies() -> [Double] {
        latencies.withLock { l in
            defer { l.removeAll(keepingCapacity: true) }
            return l
        }
    }

    private func loop(_ devices: [DemoFleet.SimulatedDevice]) async {
        let clock = ContinuousClock()
        let start = clock.now
        var tick = 0
        while !Task.isCancelled {
            for (i, device) in devices.enumerated() {
                if Task.isCancelled { return }
                let faulty = device.uid.hasSuffix("-05") && tick % 10 == 9
                let (path, headers, body) = request(for: device, tick: tick, index: i, faulty: faulty)
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
                request.method = .POST
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                request.body = .bytes(ByteBuffer(string: body))
                let t0 = clock.now
                do {
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                    _ = try await response.body.collect(upTo: 1 << 20)
                    let elapsed = (clock.now - t0).components
                    let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
                    latencies.withLock { $0.append(seconds) }
                } catch {
                    // The listener is gone (shutdown) or busy: the next tick tries again.
                }
            }
            tick += 1
            try? await Task.sleep(until: start + .milliseconds(tick * intervalMillis), clock: clock)
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
            return ("/api/v1/\(device.token)/telemetry", ["Content-Type": "application/json"], body)
        case "door":
            let body = #"{"open": \#((tick + index) % 20 < 3)}"#
            return (
                "/api/v1/devices/\(device.uid)/telemetry",
                ["Authorization": "Bearer \(device.token)", "Content-Type": "application/json"], body
            )
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
