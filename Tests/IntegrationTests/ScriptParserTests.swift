import Foundation
import IoTTesting
import Testing

@Suite(.serialized) struct ScriptParserTests {
    /// A Lua parser declared in iotd.yaml and named by a product parses that product's devices' messages
    /// arriving over HTTP; a payload the script cannot read is rejected with the script's message.
    @Test func aProductsLuaParserReadsItsDevicesMessages() throws {
        let dir = TemporaryDirectory("iotd-script-parser")
        let httpPort = ChildProcess.freeLoopbackPort()
        let apiPort = ChildProcess.freeLoopbackPort()
        let config = dir.path + "/iotd.yaml"
        try """
        dataDirectory: \(dir.path)/data
        http: { port: \(httpPort) }
        management: { port: \(apiPort), adminAPIKey: k }
        logging: { level: warning }
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
        """.write(toFile: config, atomically: false, encoding: .utf8)
        let server = try ChildProcess([try ChildProcess.builtProduct("iotd"), "serve", "--config", config])
        try waitFor(port: apiPort, path: "/readyz")
        let admin = ["Authorization": "Bearer k"]
        let issued = try LoopbackHTTPClient(port: apiPort).request(
            "POST", "/api/v1/tenants/lab/devices/old-1/tokens", headers: admin, body: Array("{}".utf8))
        let token = try #require((try JSONSerialization.jsonObject(with: Data(issued.body)) as? [String: Any])?["token"] as? String)
        let device = try LoopbackHTTPClient(port: httpPort)
        let ok = try device.request("POST", "/api/v1/\(token)/telemetry", headers: ["Content-Type": "text/plain"], body: Array("21.5;40".utf8))
        #expect(ok.status == 200, "\(ok.status) \(ok.text)")
        let bad = try device.request("POST", "/api/v1/\(token)/telemetry", headers: ["Content-Type": "text/plain"], body: Array("warm".utf8))
        #expect(bad.status == 400 && bad.text.contains("expected <temperature>;<humidity>"), "\(bad.status) \(bad.text)")
        var latest = ""
        for _ in 0..<50 {
            latest = try LoopbackHTTPClient(port: apiPort).request("GET", "/api/v1/tenants/lab/devices/old-1/latest", headers: admin).text
            if latest.contains("humidity") { break }
            usleep(100_000)
        }
        #expect(latest.contains(#""signal":"humidity""#) && latest.contains("40"), "\(latest)")
        #expect(latest.contains(#""signal":"temperature""#) && latest.contains("21.5"), "\(latest)")
        #expect(server.stop(signal: SIGTERM) == 0)
    }
}
