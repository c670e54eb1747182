import IoTCore
import IoTProtocols
import IoTServer
import IoTTestSupport
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
                tokens: TokenIssuerStub(), ingestor: h.ingestor, prometheus: nil,
                resources: [ModbusRoutes(modbus: h.modbus)],
                logger: Logger(label: "test"))
            let apiTask = Task { try await api.run() }
            defer { apiTask.cancel() }
            let port = try await api.listeningPort()
            let client = AsyncLoopbackHTTPClient(port: port)
            let auth = ["X-API-Key": "k", "Content-Type": "application/json"]
            let base = "/api/v1/tenants/plant/modbus/devices"

            let list = try await client.request("GET", base, headers: auth)
            #expect(list.status == 200)
            #expect(
                list.text.contains("\"uid\":\"api-1\"") && list.text.contains("\"requestsPerPoll\":3"), "\(list.text)")

            let write = try await client.request(
                "POST", base + "/api-1/write", headers: auth, body: Array(#"{"signal":"setpoint","value":21.5}"#.utf8))
            #expect(write.status == 200, "\(write.text)")
            let raw = try await client.request(
                "POST", base + "/api-1/write", headers: auth,
                body: Array(#"{"area":"coil","address":2,"values":[1]}"#.utf8))
            #expect(raw.status == 200, "\(raw.text)")
            _ = try await h.waitFor("api-1", "the API writes") {
                $0["setpoint"] == .number(21.5) && $0["pump"] == .bool(true)
            }

            // Errors: read-only table (400), unknown device (404), bad body (400), no key (401).
            let readOnly = try await client.request(
                "POST", base + "/api-1/write", headers: auth, body: Array(#"{"signal":"measured","value":1}"#.utf8))
            #expect(readOnly.status == 400 && readOnly.text.contains("read-only"), "\(readOnly.text)")
            let unknown = try await client.request(
                "POST", base + "/nope/write", headers: auth, body: Array(#"{"signal":"x","value":1}"#.utf8))
            #expect(unknown.status == 404, "\(unknown.text)")
            let bad = try await client.request(
                "POST", base + "/api-1/write", headers: auth, body: Array(#"{"value":1}"#.utf8))
            #expect(bad.status == 400, "\(bad.text)")
            let noKey = try await client.request(
                "POST", base + "/api-1/write", body: Array(#"{"signal":"setpoint","value":1}"#.utf8))
            #expect(noKey.status == 401)
            let status = try #require(h.modbus.device(device.identity))
            #expect(status.writes == 2)
            await h.stop()
        }

        /// Issue 20, item 7: a device the tenant does not know is refused with 400 (every poll would be
        /// rejected), unless the tenant registers unknown devices; a registered one is accepted.
        @Test func anUnregisteredDeviceIsRefused() async throws {
            let server = try ModbusServer(.libmodbus, specs: ["h:0=1"])
            defer { server.stop() }
            let h = try await ModbusHarness(devices: [])
            let api = ManagementServer(
                configuration: .init(port: 0, adminAPIKey: "k"), registry: h.registry, points: h.points,
                tokens: TokenIssuerStub(), ingestor: h.ingestor, prometheus: nil,
                resources: [ModbusRoutes(modbus: h.modbus)], logger: Logger(label: "test"))
            let apiTask = Task { try await api.run() }
            defer { apiTask.cancel() }
            let client = AsyncLoopbackHTTPClient(port: try await api.listeningPort())
            let auth = ["X-API-Key": "k", "Content-Type": "application/json"]
            func body(_ uid: String) -> [UInt8] {
                Array(
                    #"{"uid":"\#(uid)","tcp":{"host":"127.0.0.1","port":\#(server.port)},"unitId":1,"intervalMillis":100,"registers":[{"signal":"known","address":0}]}"#
                        .utf8)
            }
            let strict = "/api/v1/tenants/\(ModbusHarness.strict)/modbus/devices"
            let refused = try await client.request("POST", strict, headers: auth, body: body("ghost"))
            #expect(refused.status == 400 && refused.text.contains("not registered"), "\(refused.text)")
            let replaced = try await client.request("PUT", strict + "/ghost", headers: auth, body: body("ghost"))
            #expect(replaced.status == 400, "\(replaced.text)")
            #expect(h.modbus.devices().isEmpty, "nothing is polled")
            let known = try await client.request("POST", strict, headers: auth, body: body("s-1"))
            #expect(known.status == 201, "\(known.text)")
            // Tenant `plant` registers unknown devices on first use: any uid is accepted there.
            let open = try await client.request(
                "POST", "/api/v1/tenants/\(ModbusHarness.tenant)/modbus/devices", headers: auth, body: body("new-1"))
            #expect(open.status == 201, "\(open.text)")
            await h.stop()
        }

        /// Devices added, changed and removed at run time through `POST`/`PUT`/`DELETE
        /// /api/v1/tenants/{tenant}/modbus/devices`, against a pymodbus device, kept in the definition store
        /// and polled again by a new transport after `restoreDefinitions()` (a restart).
        @Test func addsChangesRemovesAndRestoresDevicesThroughTheManagementAPI() async throws {
            let server = try ModbusServer(.pymodbus, specs: ["h:0=215", "i:3=42"])
            defer { server.stop() }
            let definitions = InMemoryDefinitionStore()
            let auth = ["X-API-Key": "k", "Content-Type": "application/json"]
            let base = "/api/v1/tenants/plant/modbus/devices"
            func api(_ h: ModbusHarness) -> ManagementServer {
                ManagementServer(
                    configuration: .init(port: 0, adminAPIKey: "k"), registry: h.registry, points: h.points,
                    tokens: TokenIssuerStub(), ingestor: h.ingestor, prometheus: nil,
                    resources: [ModbusRoutes(modbus: h.modbus, definitions: definitions)],
                    logger: Logger(label: "test"))
            }
            let endpoint = #""tcp":{"host":"127.0.0.1","port":\#(server.port)}"#
            let h = try await ModbusHarness(devices: [])
            let server1 = api(h)
            let apiTask = Task { try await server1.run() }
            let client = AsyncLoopbackHTTPClient(port: try await server1.listeningPort())

            // Add: polled at once.
            let spec =
                #"{"uid":"rt-1",\#(endpoint),"intervalMillis":100,"timeoutMillis":200,"startDelayMillis":0,"registers":[{"signal":"temp","address":0,"type":"int16","scale":0.1}]}"#
            let created = try await client.request("POST", base, headers: auth, body: Array(spec.utf8))
            #expect(created.status == 201, "\(created.text)")
            #expect(
                created.text.contains("\"uid\":\"rt-1\"") && created.text.contains("tcp://127.0.0.1:\(server.port)"),
                "\(created.text)")
            _ = try await h.waitFor("rt-1", "the added device's first poll") { $0["temp"] == .number(21.5) }

            // Bad input: 409 for a uid already polled, 400 for an invalid unit id, a foreign tenant, no uid,
            // and a body that is not an object; none of them disturbs the polled device.
            let again = try await client.request("POST", base, headers: auth, body: Array(spec.utf8))
            #expect(again.status == 409 && again.text.contains("already polled"), "\(again.text)")
            let badUnit = try await client.request(
                "POST", base, headers: auth,
                body: Array(#"{"uid":"rt-2",\#(endpoint),"unitId":300,"registers":[{"signal":"x","address":0}]}"#.utf8))
            #expect(badUnit.status == 400 && badUnit.text.contains("unit id 300"), "\(badUnit.text)")
            let foreign = try await client.request(
                "POST", base, headers: auth,
                body: Array(
                    #"{"tenant":"strict","uid":"rt-2",\#(endpoint),"registers":[{"signal":"x","address":0}]}"#.utf8))
            #expect(foreign.status == 400 && foreign.text.contains("tenant"), "\(foreign.text)")
            let noUID = try await client.request(
                "POST", base, headers: auth,
                body: Array(#"{\#(endpoint),"registers":[{"signal":"x","address":0}]}"#.utf8))
            #expect(noUID.status == 400 && noUID.text.contains("uid"), "\(noUID.text)")
            let notObject = try await client.request("POST", base, headers: auth, body: Array("[1]".utf8))
            #expect(notObject.status == 400, "\(notObject.text)")
            let noConnection = try await client.request(
                "POST", base, headers: auth,
                body: Array(#"{"uid":"rt-2","registers":[{"signal":"x","address":0}]}"#.utf8))
            #expect(noConnection.status == 400 && noConnection.text.contains("tcp"), "\(noConnection.text)")
            #expect(h.modbus.devices().map(\.device.identity.deviceUID) == ["rt-1"])

            // Change the register map and interval: the new map is polled.
            let change =
                #"{\#(endpoint),"intervalMillis":150,"timeoutMillis":200,"startDelayMillis":0,"registers":[{"signal":"level","area":"input","address":3}]}"#
            let changed = try await client.request("PUT", base + "/rt-1", headers: auth, body: Array(change.utf8))
            #expect(
                changed.status == 200 && changed.text.contains("\"level\"") && !changed.text.contains("\"temp\""),
                "\(changed.text)")
            _ = try await h.waitFor("rt-1", "the changed register map") { $0["level"] == .number(42) }
            let one = try await client.request("GET", base + "/rt-1", headers: auth)
            #expect(one.status == 200 && one.text.contains("\"intervalMillis\":150"), "\(one.text)")
            let mismatch = try await client.request(
                "PUT", base + "/rt-1", headers: auth,
                body: Array(#"{"uid":"other",\#(endpoint),"registers":[{"signal":"x","address":0}]}"#.utf8))
            #expect(mismatch.status == 400, "\(mismatch.text)")
            let stored = try await definitions.definitions(.tenant(ModbusHarness.tenant), kind: "modbus-device")
            #expect(stored.map(\.id) == ["rt-1"])
            let storedBody = String(decoding: stored.first?.body ?? [], as: UTF8.self)
            #expect(storedBody.contains("\"level\""), "\(storedBody)")
            apiTask.cancel()
            _ = try? await apiTask.value
            await h.stop()

            // Restart: a new transport (no devices of its own) polls the stored device again.
            let h2 = try await ModbusHarness(devices: [])
            let server2 = api(h2)
            let failures = try await server2.restoreDefinitions()
            #expect(failures.isEmpty, "\(failures)")
            let restored = h2.modbus.device(DeviceIdentity(tenant: ModbusHarness.tenant, deviceUID: "rt-1"))
            #expect(restored?.device.intervalMillis == 150)
            _ = try await h2.waitFor("rt-1", "the restored device's polls") { $0["level"] == .number(42) }

            // Remove: no longer polled, no longer stored.
            let apiTask2 = Task { try await server2.run() }
            let client2 = AsyncLoopbackHTTPClient(port: try await server2.listeningPort())
            let removed = try await client2.request("DELETE", base + "/rt-1", headers: auth)
            #expect(removed.status == 204, "\(removed.text)")
            #expect(try await client2.request("GET", base + "/rt-1", headers: auth).status == 404)
            #expect(try await client2.request("DELETE", base + "/rt-1", headers: auth).status == 404)
            #expect(h2.modbus.devices().isEmpty)
            #expect(try await definitions.definitions(.tenant(ModbusHarness.tenant), kind: "modbus-device").isEmpty)
            apiTask2.cancel()
            _ = try? await apiTask2.value
            await h2.stop()
        }
    }
}

/// Tokens are not used by these tests.
struct TokenIssuerStub: TokenIssuer {
    func issueToken(for device: DeviceIdentity, label: String, now: Int64) async throws -> String { "" }
    func revokeTokens(of device: DeviceIdentity) async throws -> Int { 0 }
    func tokens(of device: DeviceIdentity) async throws -> [TokenInfo] { [] }
}
