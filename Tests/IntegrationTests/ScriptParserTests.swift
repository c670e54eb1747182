import Foundation
import IoTTestSupport
import IoTTesting
import Testing

@Suite(.serialized) struct ScriptParserTests {
    /// Issue 20, item 9: a Python parser added through `/api/v1/parsers` (`language: python`) reads a product's
    /// messages in iotd; one that breaks the sandbox fails its message with the reason, and the next is read.
    @Test func aPythonParserAddedThroughTheAPIReadsAProductsMessages() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-python-parser")
            try iotd.configure(
                iotd.preamble(logLevel: "warning") + """
                    tenants:
                      - id: lab
                        products:
                          - { id: legacy, signals: [{ name: temperature }, { name: humidity }] }
                        devices:
                          - { uid: old-1, product: legacy }
                    """)
            try iotd.start()
            defer { iotd.stop() }
            let source = """
                import json

                def parse(msg):
                    if msg["payload"] == "escape":
                        return open("/etc/passwd").read()
                    t, h = msg["payload"].split(";")
                    return [{"values": {"temperature": float(t), "humidity": float(h)}}]
                """
            let body = try JSONSerialization.data(withJSONObject: [
                "name": "py-semicolon", "language": "python", "source": source,
            ])
            let created = try iotd.api("POST", "/api/v1/parsers", String(decoding: body, as: UTF8.self))
            #expect(created.status == 201, "\(created.text)")
            let product = try iotd.api(
                "PUT", "/api/v1/tenants/lab/products/legacy",
                #"{"id": "legacy", "parser": "py-semicolon", "signals": [{"name": "temperature"}, {"name": "humidity"}]}"#
            )
            #expect(product.status == 200, "\(product.text)")
            let token = try iotd.issueToken(tenant: "lab", device: "old-1")
            let device = try LoopbackHTTPClient(port: iotd.httpPort)
            func post(_ text: String) throws -> (status: Int, text: String) {
                let r = try device.request(
                    "POST", "/api/v1/\(token)/telemetry", headers: ["Content-Type": "text/plain"],
                    body: Array(text.utf8))
                return (r.status, r.text)
            }
            let escape = try post("escape")
            #expect(escape.status == 400 && escape.text.contains("NameError"), "no open() in the sandbox: \(escape)")
            #expect(try post("21.5;40").status == 200)
            var latest = ""
            for _ in 0..<50 {
                latest = try iotd.api("GET", "/api/v1/tenants/lab/devices/old-1/latest").text
                if latest.contains("humidity") { break }
                usleep(100_000)
            }
            #expect(latest.contains(#""signal":"humidity""#) && latest.contains("21.5"), "\(latest)")
        }
    }

    /// A Lua parser declared in iotd.yaml and named by a product parses that product's devices' messages
    /// arriving over HTTP; a payload the script cannot read is rejected with the script's message.
    @Test func aProductsLuaParserReadsItsDevicesMessages() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-script-parser")
            let (httpPort, apiPort) = (iotd.httpPort, iotd.apiPort)
            try iotd.configure(
                iotd.preamble(logLevel: "warning") + """
                    parsers:
                      - name: semicolon
                        language: lua
                        source: |
                          function parse(msg)
                            local t, h = string.match(msg.payload, "^([%d.-]+);([%d.-]+)$")
                            if t == nil then error("expected <temperature>;<humidity>") end
                            return { { values = { temperature = tonumber(t), humidity = tonumber(h) } } }
                          end
                    tenants:
                      - id: lab
                        products:
                          - { id: legacy, parser: semicolon, signals: [{ name: temperature }, { name: humidity }] }
                        devices:
                          - { uid: old-1, product: legacy }
                    """)
            let server = try iotd.start()
            let admin = ["Authorization": "Bearer test-admin-key-0123456789abcdef0123"]
            let token = try iotd.issueToken(tenant: "lab", device: "old-1")
            let device = try LoopbackHTTPClient(port: httpPort)
            let ok = try device.request(
                "POST", "/api/v1/\(token)/telemetry", headers: ["Content-Type": "text/plain"],
                body: Array("21.5;40".utf8))
            #expect(ok.status == 200, "\(ok.status) \(ok.text)")
            let bad = try device.request(
                "POST", "/api/v1/\(token)/telemetry", headers: ["Content-Type": "text/plain"], body: Array("warm".utf8))
            #expect(
                bad.status == 400 && bad.text.contains("expected <temperature>;<humidity>"), "\(bad.status) \(bad.text)"
            )
            var latest = ""
            for _ in 0..<50 {
                latest = try LoopbackHTTPClient(port: apiPort).request(
                    "GET", "/api/v1/tenants/lab/devices/old-1/latest", headers: admin
                ).text
                if latest.contains("humidity") { break }
                usleep(100_000)
            }
            #expect(latest.contains(#""signal":"humidity""#) && latest.contains("40"), "\(latest)")
            #expect(latest.contains(#""signal":"temperature""#) && latest.contains("21.5"), "\(latest)")
            #expect(server.stop(signal: SIGTERM) == 0)
        }
    }

    /// A script parser added through the management API (no restart) reads a product's messages on the
    /// device path whatever their content type; a replacement takes effect on the next message; it
    /// survives a restart; removing it is refused while a product names it; a script that does not
    /// compile is refused with the interpreter's message and changes nothing.
    @Test func parsersAreAddedReplacedAndRemovedThroughTheAPI() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-parser-api")
            let (httpPort, apiPort) = (iotd.httpPort, iotd.apiPort)
            try iotd.configure(
                iotd.preamble(logLevel: "warning") + """
                    tenants:
                      - id: lab
                        products:
                          - { id: legacy, parser: semicolon, signals: [{ name: temperature }, { name: humidity }] }
                        devices:
                          - { uid: old-1, product: legacy }
                    """)
            var server = try iotd.start()
            defer { _ = server.stop(signal: SIGKILL) }
            let admin = [
                "Authorization": "Bearer test-admin-key-0123456789abcdef0123", "Content-Type": "application/json",
            ]
            func api(_ method: String, _ path: String, _ body: Any? = nil) throws -> (status: Int, text: String) {
                let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) } ?? []
                let r = try LoopbackHTTPClient(port: apiPort).request(method, path, headers: admin, body: bytes)
                return (r.status, r.text)
            }
            let v1 = """
                function parse(msg)
                  local t, h = string.match(msg.payload, "^([%d.-]+);([%d.-]+)$")
                  if t == nil then error("expected <temperature>;<humidity>") end
                  return { { values = { temperature = tonumber(t), humidity = tonumber(h) } } }
                end
                """
            let token = try iotd.issueToken(tenant: "lab", device: "old-1")
            func post(_ text: String) throws -> (status: Int, text: String) {
                let r = try LoopbackHTTPClient(port: httpPort).request(
                    "POST", "/api/v1/devices/old-1/telemetry",
                    headers: ["Authorization": "Bearer \(token)", "Content-Type": "text/csv"], body: Array(text.utf8))
                return (r.status, r.text)
            }
            func latest(contains needle: String) throws -> String {
                var text = ""
                for _ in 0..<50 {
                    text = try api("GET", "/api/v1/tenants/lab/devices/old-1/latest").text
                    if text.contains(needle) { break }
                    usleep(100_000)
                }
                return text
            }
            let early = try post("21.5;40")
            #expect(
                early.status == 400 && early.text.contains("not registered"),
                "the product's parser is not there yet: \(early)")
            let broken = try api(
                "POST", "/api/v1/parsers", ["name": "semicolon", "language": "lua", "source": "function parse(msg"])
            #expect(broken.status == 400 && broken.text.contains("does not compile"), "\(broken)")
            let typo = try api(
                "PUT", "/api/v1/tenants/lab/products/legacy",
                ["id": "legacy", "parser": "semicolom", "signals": [["name": "temperature"], ["name": "humidity"]]])
            #expect(
                typo.status == 400 && typo.text.contains("not registered"),
                "a product cannot name a missing parser: \(typo)")
            let builtIn = try api("POST", "/api/v1/parsers", ["name": "json", "language": "lua", "source": v1])
            #expect(builtIn.status == 409, "\(builtIn)")
            let created = try api("POST", "/api/v1/parsers", ["name": "semicolon", "language": "lua", "source": v1])
            #expect(created.status == 201, "\(created)")
            let again = try api("POST", "/api/v1/parsers", ["name": "semicolon", "language": "lua", "source": v1])
            #expect(again.status == 409, "\(again)")
            let first = try post("21.5;40")
            #expect(first.status == 200, "text/csv on the device path goes through the product's parser: \(first)")
            #expect(try latest(contains: "40").contains("21.5"))

            // Replace it: humidity is now reported in per mille and divided by 10.
            let v2 = v1.replacingOccurrences(of: "humidity = tonumber(h)", with: "humidity = tonumber(h) / 10")
            let replaced = try api("PUT", "/api/v1/parsers/semicolon", ["language": "lua", "source": v2])
            #expect(replaced.status == 200, "\(replaced)")
            #expect(try post("22;555").status == 200)
            #expect(try latest(contains: "55.5").contains("55.5"))

            let inUse = try api("DELETE", "/api/v1/parsers/semicolon")
            #expect(inUse.status == 409 && inUse.text.contains("legacy"), "\(inUse)")

            // A restart keeps the replaced script.
            #expect(server.stop(signal: SIGTERM) == 0)
            server = try iotd.start()
            let listed = try api("GET", "/api/v1/parsers")
            #expect(listed.text.contains("semicolon") && listed.text.contains("/ 10"), "\(listed)")
            let afterRestart = try post("23;700")
            #expect(afterRestart.status == 200, "\(afterRestart)")
            #expect(try latest(contains: "70").contains("23"))

            // Once no product names it, it can be removed; the product's next message is then rejected.
            let plain = try api(
                "PUT", "/api/v1/tenants/lab/products/legacy",
                ["id": "legacy", "signals": [["name": "temperature"], ["name": "humidity"]]])
            #expect(plain.status == 200, "\(plain)")
            #expect(try api("DELETE", "/api/v1/parsers/semicolon").status == 204)
            #expect(try api("GET", "/api/v1/parsers/semicolon").status == 404)
            let refused = try post("24;800")
            #expect(refused.status == 415, "without a product parser, text/csv is not readable: \(refused)")
            #expect(server.stop(signal: SIGTERM) == 0)
        }
    }
}
