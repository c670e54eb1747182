import Foundation
import IoTCore
import IoTProtocols
import IoTServer
import IoTTestSupport
import IoTTesting
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `/api/v1/coap/observations` on an in-process management server, against aiocoap servers whose observable
/// resource changes every 100 ms.
@Suite("CoAP observations API", .serialized)
struct CoAPObservationAPITests {
    static let auth = ["X-API-Key": "k", "Content-Type": "application/json"]
    static let base = "/api/v1/coap/observations"

    /// A manager and a management server over `h`'s stores and `definitions`; stopped by ``stop()``.
    final class API: Sendable {
        let manager: CoAPObserverManager
        let server: ManagementServer
        let client: AsyncLoopbackHTTPClient
        private let tasks: [Task<Void, any Error>]

        init(_ h: CoAPHarness, definitions: InMemoryDefinitionStore, maxObservations: Int) async throws {
            let logger = Logger(label: "coap-api-test")
            manager = CoAPObserverManager(
                configuration: .init(maxObservations: maxObservations, outbound: .init(allow: ["127.0.0.1"])),
                ingestor: h.ingestor, logger: logger)
            server = ManagementServer(
                configuration: .init(port: 0, adminAPIKey: "k"), registry: h.registry, points: h.points,
                tokens: h.tokens,
                ingestor: h.ingestor, prometheus: nil,
                resources: [CoAPObservationRoutes(observations: manager, definitions: definitions)],
                logger: logger)
            let (manager, server) = (manager, server)
            tasks = [Task { try await manager.run() }, Task { try await server.run() }]
            client = AsyncLoopbackHTTPClient(port: try await server.listeningPort())
        }

        func request(_ method: String, _ path: String, _ body: String? = nil, key: Bool = true)
            async throws -> LoopbackHTTPClient.Response
        {
            try await client.request(
                method, path, headers: key ? CoAPObservationAPITests.auth : [:], body: body.map { Array($0.utf8) } ?? []
            )
        }

        /// The JSON report of `id` (GET …/{id}).
        func report(_ id: String) async throws -> [String: Any]? {
            let r = try await request("GET", CoAPObservationAPITests.base + "/" + id)
            guard r.status == 200 else { return nil }
            return try JSONSerialization.jsonObject(with: Data(r.text.utf8)) as? [String: Any]
        }

        /// Waits (up to 6 s) until the report of `id` counts `stored` notifications at least.
        func waitForStored(_ id: String, atLeast n: Int) async throws -> [String: Any] {
            var last: [String: Any]?
            for _ in 0..<300 {
                last = try await report(id)
                if let stored = last?["stored"] as? Int, stored >= n { return last! }
                try await Task.sleep(for: .milliseconds(20))
            }
            Issue.record("observation \(id) did not store \(n) notifications: \(String(describing: last))")
            return last ?? [:]
        }

        func stop() async {
            for task in tasks { task.cancel() }
            for task in tasks { _ = try? await task.value }
        }
    }

    /// Starts the aiocoap observable server on a port it picks; waits for its "ready" line.
    static func startDevice() throws -> (ChildProcess, Int) {
        try startAiocoapServer()
    }

    static func spec(_ id: String, port: Int, device: String = "t-1", tenant: String = "acme") -> String {
        #"{"id":"\#(id)","uri":"coap://127.0.0.1:\#(port)/temp","tenant":"\#(tenant)","deviceUID":"\#(device)"}"#
    }

    @Test("create, monitor, refuse bad input, survive a restart of the manager and the API, delete")
    func observationsThroughTheAPI() async throws {
        let h = try await CoAPHarness()
        let (device, port) = try Self.startDevice()
        defer { device.stop(signal: SIGKILL) }
        let definitions = InMemoryDefinitionStore()
        let api = try await API(h, definitions: definitions, maxObservations: 2)

        // Create: 201 with the report; notifications are journaled and counted.
        let created = try await api.request("POST", Self.base, Self.spec("boiler", port: port))
        #expect(created.status == 201, "\(created.text)")
        #expect(
            created.text.contains(#""state":"registering""#) && created.text.contains(#""id":"boiler""#),
            "\(created.text)")
        let report = try await api.waitForStored("boiler", atLeast: 3)
        #expect(report["state"] as? String == "observing", "\(report)")
        #expect((report["notifications"] as? Int ?? 0) >= 3 && report["rejected"] as? Int == 0, "\(report)")
        #expect(report["registrations"] as? Int == 1, "\(report)")
        #expect(try await h.waitForPoint("t-1", "temp") != nil)
        let list = try await api.request("GET", Self.base)
        #expect(list.status == 200 && list.text.hasPrefix("[") && list.text.contains(#""id":"boiler""#), "\(list.text)")
        #expect(try await definitions.definitions(.tenant("acme"), kind: "coap-observation").map(\.id) == ["boiler"])

        // Bad input: 400 with what to fix; nothing is created.
        let badURI = try await api.request(
            "POST", Self.base, #"{"id":"x","uri":"http://127.0.0.1/temp","tenant":"acme","deviceUID":"t-1"}"#)
        #expect(badURI.status == 400 && badURI.text.contains("coap://"), "\(badURI.text)")
        let noDevice = try await api.request(
            "POST", Self.base, #"{"id":"x","uri":"coap://127.0.0.1/temp","tenant":"acme"}"#)
        #expect(noDevice.status == 400 && noDevice.text.contains("deviceUID"), "\(noDevice.text)")
        let noTenant = try await api.request("POST", Self.base, Self.spec("x", port: port, tenant: "nope"))
        #expect(
            noTenant.status == 400 && noTenant.text.contains("tenant \\\"nope\\\" of the observation does not exist"),
            "\(noTenant.text)")
        let badID = try await api.request("POST", Self.base, Self.spec("a b", port: port))
        #expect(badID.status == 400 && badID.text.contains("observation id"), "\(badID.text)")
        let notJSON = try await api.request("POST", Self.base, "[1,2")
        #expect(notJSON.status == 400, "\(notJSON.text)")
        let noKey = try await api.request("POST", Self.base, Self.spec("x", port: port), key: false)
        #expect(noKey.status == 401, "\(noKey.text)")
        // Issue 17, item 13: a device address outside the outbound allow-list (only 127.0.0.1 here) is refused.
        for host in ["10.0.0.7", "169.254.169.254", "127.0.0.9"] {
            let ssrf = try await api.request(
                "POST", Self.base, #"{"id":"x","uri":"coap://\#(host):5683/temp","tenant":"acme","deviceUID":"t-1"}"#)
            #expect(ssrf.status == 403 && ssrf.text.contains("outbound allow-list"), "\(host): \(ssrf.text)")
        }

        // Conflicts: the same id, then the instance's limit (2); a refused create leaves nothing behind.
        let duplicate = try await api.request("POST", Self.base, Self.spec("boiler", port: port, device: "t-2"))
        #expect(duplicate.status == 409 && duplicate.text.contains("exists"), "\(duplicate.text)")
        let second = try await api.request("POST", Self.base, Self.spec("second", port: port, device: "t-2"))
        #expect(second.status == 201, "\(second.text)")
        let third = try await api.request("POST", Self.base, Self.spec("third", port: port, device: "t-2"))
        #expect(third.status == 409 && third.text.contains("limit of 2 observations"), "\(third.text)")
        #expect(try await api.request("GET", Self.base + "/third").status == 404)
        #expect(api.manager.list().map(\.spec.id) == ["boiler", "second"])
        #expect(
            try await definitions.definitions(.tenant("acme"), kind: "coap-observation").map(\.id) == [
                "boiler", "second",
            ])
        _ = try await api.waitForStored("second", atLeast: 2)
        #expect(try await api.report("boiler")?["rejected"] as? Int == 0)  // the bad requests cost it nothing

        // Unknown ids: 404 with the JSON error shape.
        let unknown = try await api.request("GET", Self.base + "/nope")
        #expect(unknown.status == 404 && unknown.text.contains(#""error":"not_found""#), "\(unknown.text)")
        #expect(try await api.request("DELETE", Self.base + "/nope").status == 404)

        // Restart: a new manager and API restore both observations from the definition store.
        await api.stop()
        let api2 = try await API(h, definitions: definitions, maxObservations: 2)
        let failures = try await api2.server.restoreDefinitions()
        #expect(failures.isEmpty, "\(failures)")
        #expect(api2.manager.list().map(\.spec.id) == ["boiler", "second"])
        let restored = try await api2.waitForStored("boiler", atLeast: 2)
        #expect(restored["state"] as? String == "observing", "\(restored)")

        // Delete: no longer observed, listed or kept; the device's notifications stop being ingested.
        #expect(try await api2.request("DELETE", Self.base + "/boiler").status == 204)
        #expect(try await api2.request("GET", Self.base + "/boiler").status == 404)
        #expect(try await api2.request("DELETE", Self.base + "/boiler").status == 404)
        #expect(try await api2.request("DELETE", Self.base + "/second").status == 204)
        #expect(try await api2.request("GET", Self.base).text == "[]")
        #expect(try await definitions.definitions(.tenant("acme"), kind: "coap-observation").isEmpty)
        let received = h.ingestor.statistics.received
        try await Task.sleep(for: .milliseconds(600))
        #expect(h.ingestor.statistics.received <= received + 2)  // at most one in flight per observation
        #expect(h.ingestor.statistics.isBalanced)
        await api2.stop()
        await h.stop()
    }
}
