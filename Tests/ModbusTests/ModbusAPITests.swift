import IoTCore
import IoTProtocols
import IoTServer
import IoTTesting
import Logging
import Testing

extension ModbusTests {
    /// Downlink through the management API: `POST /api/v1/tenants/{tenant}/modbus/devices/{uid}/write`,
    /// against the libmodbus simulator.
    @Suite struct ModbusAPITests {
        @Test func listsDevicesAndWritesThroughTheManagementAPI() async throws {
            let server = try ModbusServer(.libmodbus, specs: ["h:10=0", "c:2=0"])
            defer { server.stop() }
            let device = ModbusTests.ModbusTCPTests.device(
                "api-1", port: server.port,
                registers: [
                    ModbusRegister(signal: "setpoint", address: 10, type: .int16, scale: 0.5),
                    ModbusRegister(signal: "pump", area: .coil, address: 2),
                    ModbusRegister(signal: "measured", area: .inputRegister, address: 7),
                ])
            let h = try await ModbusHarness(devices: [device])
            let api = ManagementServer(
                configuration: .init(port: 0, adminAPIKey: "k"), registry: h.registry, points: h.points,
                tokens: TokenIssuerStub(), ingestor: h.ingestor, prometheus: nil, modbus: h.modbus, logger: Logger(label: "test"))
            let apiTask = Task { try await api.run() }
            defer { apiTask.cancel() }
            let port = try await api.listeningPort()
            let client = try LoopbackHTTPClient(port: port)
            let auth = ["X-API-Key": "k", "Content-Type": "application/json"]
            let base = "/api/v1/tenants/plant/modbus/devices"

            let list = try client.request("GET", base, headers: auth)
            #expect(list.status == 200)
            #expect(list.text.contains("\"uid\":\"api-1\"") && list.text.contains("\"requestsPerPoll\":3"), "\(list.text)")

            let write = try client.request("POST", base + "/api-1/write", headers: auth, body: Array(#"{"signal":"setpoint","value":21.5}"#.utf8))
            #expect(write.status == 200, "\(write.text)")
            let raw = try client.request("POST", base + "/api-1/write", headers: auth, body: Array(#"{"area":"coil","address":2,"values":[1]}"#.utf8))
            #expect(raw.status == 200, "\(raw.text)")
            _ = try await h.waitFor("api-1", "the API writes") { $0["setpoint"] == .number(21.5) && $0["pump"] == .bool(true) }

            // Errors: read-only table (400), unknown device (404), bad body (400), no key (401).
            let readOnly = try client.request("POST", base + "/api-1/write", headers: auth, body: Array(#"{"signal":"measured","value":1}"#.utf8))
            #expect(readOnly.status == 400 && readOnly.text.contains("read-only"), "\(readOnly.text)")
            let unknown = try client.request("POST", base + "/nope/write", headers: auth, body: Array(#"{"signal":"x","value":1}"#.utf8))
            #expect(unknown.status == 404, "\(unknown.text)")
            let bad = try client.request("POST", base + "/api-1/write", headers: auth, body: Array(#"{"value":1}"#.utf8))
            #expect(bad.status == 400, "\(bad.text)")
            let noKey = try client.request("POST", base + "/api-1/write", body: Array(#"{"signal":"setpoint","value":1}"#.utf8))
            #expect(noKey.status == 401)
            let status = try #require(h.modbus.device(device.identity))
            #expect(status.writes == 2)
            await h.stop()
        }
    }
}

/// Tokens are not used by these tests.
struct TokenIssuerStub: TokenIssuer {
    func issueToken(for device: DeviceIdentity, label: String, now: Int64) async throws -> String { "" }
    func revokeTokens(of device: DeviceIdentity) async throws -> Int { 0 }
    func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] { [] }
}
