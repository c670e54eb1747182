import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 20, item 6, from outside: `iotd serve` with an MQTT client under `mqtt.limits.maxInboundBytesPerSecond`,
/// a real mosquitto, and paho publishing three times the limit at once. The client's report shows its throttle,
/// `/metrics` counts it, every message the broker held is stored, and the throttle ends with the flood.
@Suite(.serialized) struct MQTTLimitsCurlTests {
    @Test func aFloodedClientIsThrottledCountedAndLosesNothing() async throws {
        try await onOwnThread {
            let directory = TemporaryDirectory("iotd-mqtt-limits")
            let brokerPort = ChildProcess.freeLoopbackPort()
            try """
            listener \(brokerPort) 127.0.0.1
            allow_anonymous true
            persistence false
            max_queued_messages 100000
            """.write(toFile: directory.path + "/mosquitto.conf", atomically: true, encoding: .utf8)
            let broker = try ChildProcess(["/usr/sbin/mosquitto", "-c", directory.path + "/mosquitto.conf"])
            defer { broker.stop(signal: SIGTERM) }
            try ChildProcess.waitForLoopbackPort(brokerPort)

            let iotd = IotdProcess("iotd-mqtt-limits")
            try iotd.configure(
                iotd.preamble()
                    + """
                    outbound: { allow: [127.0.0.1] }
                    tenants:
                      - id: acme
                        products: [{ id: meter, signals: [{ name: seq }, { name: pad, type: text }] }]
                        devices: [{ uid: g-1, product: meter }]
                    mqtt:
                      threads: 1
                      limits: { maxInboundBytesPerSecond: 200000 }
                      clients:
                        - id: greedy
                          tenant: acme
                          broker: { host: 127.0.0.1, port: \(brokerPort), cleanSession: false }
                          subscriptions: [{ template: "greedy/{uid}/telemetry", qos: 1 }]
                    """)
            try iotd.start()
            defer { iotd.stop() }
            func client() throws -> String { try iotd.api("GET", "/api/v1/mqtt/clients/greedy").text }
            try eventually("the client subscribed", seconds: 10) { try client().contains(#""grantedQoS":1"#) }

            // 400 KB/s for 3 s (40 messages of 1,000 bytes every 100 ms), QoS 1: twice the limit. paho waits
            // for every PUBACK of the broker.
            let n = 1_200
            let script = """
                import time, paho.mqtt.client as mqtt
                c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood")
                c.connect("127.0.0.1", \(brokerPort))
                c.loop_start()
                pad = "x" * 940
                infos = []
                for i in range(\(n)):
                    infos.append(c.publish("greedy/g-1/telemetry", '{"ts": %d, "seq": %d, "pad": "%s"}' % (1700000000000 + i, i, pad), qos=1))
                    if i % 40 == 39: time.sleep(0.1)
                for info in infos: info.wait_for_publish(30)
                print("PUBLISHED", sum(1 for i in infos if i.is_published()), flush=True)
                c.loop_stop()
                """
            let publisher = try ChildProcess(["/usr/bin/env", "python3", "-c", script])
            defer { publisher.stop(signal: SIGKILL) }

            try eventually("the client is throttled", seconds: 5) { try client().contains(#""throttle":{"#) }
            let report = try client()
            #expect(
                report.contains(#""reason":"bandwidth""#) && report.contains(#""bytesPerSecond":200000"#),
                "its share is the whole limit, being the only client: \(report)")
            try eventually("/metrics counts the seconds it paused", seconds: 10) {
                let metrics = try LoopbackHTTPClient(port: iotd.apiPort).request("GET", "/metrics").text
                return metrics.split(separator: "\n").contains {
                    $0.hasPrefix(#"iot_mqtt_client_throttled_total{client="greedy",reason="bandwidth"} "#)
                }
            }
            #expect(publisher.readLine(timeoutSeconds: 60) == "PUBLISHED \(n)")
            try eventually("every message stored", seconds: 30) {
                let series = try iotd.api("GET", "/api/v1/tenants/acme/devices/g-1/series/seq?limit=5000").text
                return series.components(separatedBy: #""time":"#).count - 1 == n
            }
            try eventually("the throttle ends with the flood", seconds: 5) { try !client().contains("throttle") }
        }
    }

}
