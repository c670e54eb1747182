import Foundation
import IoTCore
import IoTProtocols
import IoTStorage
import Logging

/// The MQTT loop thread's work per message without a broker or a socket: the delivered topic and payload
/// copied as `MQTTClient` does, the device read from the topic template, and read passes of 256 messages
/// submitted to the gateway (parse, resolve, journal, hand-off to the SQLite commit), on one plain thread.
/// Prints that thread's CPU time per message and the process's (the commit threads included). The payloads
/// are `mqtt_pub`'s, over 1,000 topics. `iot-bench mqtt-path [--points N]`.
func runMQTTPathBenchmark(_ options: BenchOptions) async throws {
    let messages = options.points ?? (options.smoke ? 20_000 : 400_000)
    let topics = 1_000
    let dir = options.directory + "/mqtt-path"
    removeTree(dir)
    _ = shell("mkdir -p '\(dir)'")
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let (ingestor, tenant) = try await benchIngestor(dir: dir, topics: topics, logger: logger)
    let ingest = Task { try await ingestor.run() }
    defer { ingest.cancel() }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    let gateway = DefaultIngestGateway(ingestor: ingestor)
    let template = try TopicTemplate("devices/{uid}/telemetry")
    // What the broker delivers: C strings and bytes, made before the clock starts; every message a new point.
    let wire: [(topic: [CChar], payload: [UInt8])] = (0..<messages).map { i in
        let topic = "devices/\(i % topics)/telemetry"
        let payload = "{\"ts\":\(1_700_000_000_000 + i / topics),\"temp\":\(20 + Double(i % 100) / 10),\"hum\":55.5}"
        return (topic.utf8CString.map { $0 }, Array(payload.utf8))
    }
    let parser = JSONParser()
    let processBefore = processCPUSeconds()
    let r = try await onThread { () -> (thread: Double, wall: Double, retries: Int) in
        let cpu0 = threadCPUSeconds()
        let t0 = monotonicSeconds()
        var retries = 0
        var sent = 0
        var pass: [IngestSubmission] = []
        pass.reserveCapacity(256)
        while sent < messages {
            for _ in 0..<min(256, messages - sent) {
                let w = wire[sent]
                let topic = w.topic.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                let payload = w.payload.withUnsafeBytes { [UInt8]($0) }
                guard let uid = template.deviceUID(in: topic) else { fatalError("topic") }
                let message = InboundMessage(transport: "mqtt", deviceUID: uid, topic: topic, payload: payload)
                let identity = DeviceIdentity(tenant: tenant, deviceUID: uid)
                pass.append(.message(message, parser: parser, from: .device(identity)))
                sent += 1
            }
            var batch = pass
            pass.removeAll(keepingCapacity: true)
            while !batch.isEmpty {
                let outcomes = gateway.submitBlocking(batch, onCacheMiss: .wait)
                var retryFrom: Int?
                for (k, o) in outcomes.enumerated() {
                    if case .refused(let e) = o {
                        if e.code == .backpressure {
                            if retryFrom == nil { retryFrom = k }
                        } else {
                            fatalError("refused: \(e)")
                        }
                    }
                }
                guard let retryFrom else { break }
                retries += 1
                batch.removeFirst(retryFrom)
                usleep(2_000)
            }
        }
        return (threadCPUSeconds() - cpu0, monotonicSeconds() - t0, retries)
    }
    while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(1)) }
    let process = processCPUSeconds() - processBefore
    print("== mqtt-path: \(grouped(Double(messages))) messages over \(topics) topics, read passes of 256, no broker")
    print(
        String(
            format: "loop thread %.2f µs/msg (%.0f msg/s on it, %d back-pressure retries); process %.2f µs/msg",
            r.thread / Double(messages) * 1e6, Double(messages) / r.wall, r.retries, process / Double(messages) * 1e6))
}
