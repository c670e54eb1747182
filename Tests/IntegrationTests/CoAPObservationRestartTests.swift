import Foundation
import IoTTestSupport
import IoTTesting
import Testing

@Suite(.serialized) struct CoAPObservationRestartTests {
    /// `iotd serve --check` refuses an invalid `coap.observations` entry and names it.
    @Test func invalidObservationInTheFileIsRefused() async throws {
        try await onOwnThread {
            let dir = TemporaryDirectory("iotd-coap-config")
            let path = dir.path + "/bad.yaml"
            try """
            coap:
              observations:
                - { id: boiler, uri: "http://10.0.0.7/temp", tenant: lab, deviceUID: b-1 }
            """.write(toFile: path, atomically: false, encoding: .utf8)
            let iotd = try ChildProcess.builtProduct("iotd")
            let check = try ChildProcess([
                "/bin/sh", "-c", "'\(iotd)' serve --config '\(path)' --check 2>&1; echo exit $?",
            ])
            var output: [String] = []
            while let line = check.readLine() { output.append(line) }
            check.wait()
            #expect(output.last == "exit 78", "a configuration error exits with EX_CONFIG: \(output)")
            #expect(
                output.contains { $0.contains("coap.observations[0]") && $0.contains("must start with coap://") },
                "\(output)")
        }
    }

    /// A real iotd observes an aiocoap device: one observation from `coap.observations`, one created through
    /// `POST /api/v1/coap/observations`; both are counted (report and `/metrics`) and both observe again
    /// after the process is killed and started again.
    @Test func observationsFromTheFileAndTheAPISurviveARestart() async throws {
        try await onOwnThread {
            let root = String(#filePath.prefix(upTo: #filePath.range(of: "/Tests/")!.lowerBound))
            // Port 0: the peer picks a free port right before binding it and reports it.
            let device = try ChildProcess(
                ["/usr/bin/env", "python3", "-u", root + "/Tests/IoTCoAPTests/Peers/coap_peer.py", "server", "0"])
            defer { device.stop(signal: SIGKILL) }
            guard let ready = device.readLine(), ready.hasPrefix("ready "), let devicePort = Int(ready.dropFirst(6))
            else {
                throw IntegrationFailure(description: "the aiocoap server did not start; see its output above")
            }
            let iotd = IotdProcess("iotd-coap-observe")
            let uri = "coap://127.0.0.1:\(devicePort)/temp"
            try iotd.configure(
                iotd.preamble(logLevel: "warning") + """
                    outbound: { allow: ["127.0.0.1"] }
                    coap:
                      port: 0
                      observations:
                        - { id: from-file, uri: "\(uri)", tenant: lab, deviceUID: t-1 }
                    tenants:
                      - id: lab
                        products:
                          - { id: thermo, signals: [{ name: temp }] }
                        devices:
                          - { uid: t-1, product: thermo }
                          - { uid: t-2, product: thermo }
                    """)
            try iotd.start()
            defer { iotd.stop() }
            func api(_ method: String, _ path: String, _ body: String = "") throws -> (status: Int, text: String) {
                try iotd.api(method, path, body)
            }
            /// Waits until the observation's report counts `n` stored notifications.
            func waitForStored(_ id: String, _ n: Int) throws -> String {
                var last = ""
                for _ in 0..<100 {
                    last = try api("GET", "/api/v1/coap/observations/\(id)").text
                    if let object = try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any],
                        let stored = object["stored"] as? Int, stored >= n
                    {
                        return last
                    }
                    usleep(50_000)
                }
                Issue.record("observation \(id) did not store \(n) notifications: \(last)")
                return last
            }

            let created = try api(
                "POST", "/api/v1/coap/observations",
                #"{"id":"from-api","uri":"\#(uri)","tenant":"lab","deviceUID":"t-2"}"#)
            #expect(created.status == 201, "\(created.text)")
            #expect(try waitForStored("from-api", 3).contains(#""state":"observing""#))
            #expect(try waitForStored("from-file", 3).contains(#""state":"observing""#))
            let metrics = try LoopbackHTTPClient(port: iotd.apiPort).request("GET", "/metrics").text
            #expect(
                metrics.split(separator: "\n").contains {
                    $0.hasPrefix("iot_ingest_messages_total") && $0.contains(#"transport="coap-observe""#)
                },
                "\(metrics)")

            #expect(iotd.stop(signal: SIGKILL) & 0x7f == SIGKILL)
            try iotd.start()
            let list = try api("GET", "/api/v1/coap/observations").text
            #expect(list.contains(#""id":"from-api""#) && list.contains(#""id":"from-file""#), "\(list)")
            #expect(try waitForStored("from-api", 3).contains(#""registrations":1"#))
            #expect(try waitForStored("from-file", 3).contains(#""state":"observing""#))
            #expect(try api("DELETE", "/api/v1/coap/observations/from-api").status == 204)
            #expect(try api("GET", "/api/v1/coap/observations").text.contains("from-api") == false)
        }
    }
}
