import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTServer
import Metrics
import Prometheus
import Testing

@Suite struct ManagementServerTests {
    @Test func theAdminKeyIsRequiredOnEveryAPIRequest() async throws {
        let h = try await ServerHarness()
        try await h.api { c in
            let none = try await c.send(.get, "/api/v1/tenants", key: nil)
            #expect(none.status == .unauthorized && none.errorCode == "unauthorized")
            #expect(try await c.send(.get, "/api/v1/tenants", key: "wrong").status == .unauthorized)
            #expect(try await c.send(.get, "/api/v1/tenants", key: ServerHarness.key + "x").status == .unauthorized)
            #expect(try await c.send(.get, "/api/v1/no-such-route", key: nil).status == .unauthorized)
            #expect(try await c.send(.get, "/api/v1/tenants").status == .ok)
            #expect(try await c.send(.get, "/api/v1/tenants", keyHeader: HTTPField.Name("X-API-Key")!).status == .ok)
            // operational endpoints need no key
            #expect(try await c.send(.get, "/healthz", key: nil).status == .ok)
            #expect(try await c.send(.get, "/readyz", key: nil).status == .ok)
            #expect(try await c.send(.get, "/metrics", key: nil).status == .ok)
        }
        await h.stop()
    }

    @Test func withoutAConfiguredKeyEveryAPIRequestIsRefused() async throws {
        let h = try await ServerHarness(adminAPIKey: nil)
        try await h.api { c in
            let r = try await c.send(.get, "/api/v1/tenants")
            #expect(r.status == .unauthorized)
            #expect(r.text.contains("adminAPIKey"), "the message says what to configure: \(r.text)")
            #expect(try await c.send(.get, "/healthz", key: nil).status == .ok)
        }
        await h.stop()
    }

    @Test func tenantsCanBeCreatedListedAndRead() async throws {
        let h = try await ServerHarness()
        try await h.api { c in
            let created = try await c.send(.post, "/api/v1/tenants", #"{"id": "acme", "name": "ACME Corp"}"#)
            #expect(created.status == .created)
            #expect(created.object["name"] as? String == "ACME Corp")
            #expect(try await c.send(.post, "/api/v1/tenants", #"{"id": "acme"}"#).status == .conflict)
            let bad = try await c.send(.post, "/api/v1/tenants", #"{"id": "a b"}"#)
            #expect(bad.status == .badRequest && bad.errorCode == "invalid_argument")
            #expect(try await c.send(.post, "/api/v1/tenants", #"{"name": "x"}"#).status == .badRequest)
            #expect(try await c.send(.post, "/api/v1/tenants", #"{"id": "#).status == .badRequest)
            let list = try await c.json("/api/v1/tenants") as? [[String: Any]]
            #expect(list?.map { $0["id"] as? String } == ["acme"])
            let one = try await c.json("/api/v1/tenants/acme") as? [String: Any]
            #expect(one?["id"] as? String == "acme")
            let missing = try await c.get("/api/v1/tenants/nope")
            #expect(missing.status == .notFound && missing.errorCode == "not_found")
            #expect(try await c.get("/api/v1/tenants/nope/devices").status == .notFound)
        }
        await h.stop()
    }

    @Test(arguments: [false, true])
    func productsCRUD(sqlite: Bool) async throws {
        let h = try await ServerHarness(sqlite: sqlite)
        try await h.api { c in
            try await h.seed(c)
            let p = try await c.json("/api/v1/tenants/acme/products/thermo") as? [String: Any]
            let signals = p?["signals"] as? [[String: Any]]
            #expect(signals?.map { $0["name"] as? String } == ["temp", "on"])
            #expect(signals?.first?["type"] as? String == "number" && signals?.first?["unit"] as? String == "°C")
            #expect(try await c.send(.post, "/api/v1/tenants/acme/products", #"{"id": "thermo"}"#).status == .conflict)
            #expect(
                try await c.send(
                    .post, "/api/v1/tenants/acme/products", #"{"id": "x", "signals": [{"name": "a"}, {"name": "a"}]}"#
                ).status == .badRequest)
            #expect(
                try await c.send(
                    .post, "/api/v1/tenants/acme/products", #"{"id": "x", "signals": [{"name": "a", "type": "color"}]}"#
                ).status == .badRequest)
            #expect(
                try await c.send(.post, "/api/v1/tenants/acme/products", #"{"id": "meter", "name": "Meter"}"#).status
                    == .created)
            let list = try await c.json("/api/v1/tenants/acme/products") as? [[String: Any]]
            #expect(list?.map { $0["id"] as? String } == ["meter", "thermo"])
            let put = try await c.send(
                .put, "/api/v1/tenants/acme/products/meter", #"{"name": "Power meter", "signals": [{"name": "kwh"}]}"#)
            #expect(put.status == .ok && put.object["name"] as? String == "Power meter")
            #expect(
                try await c.send(.put, "/api/v1/tenants/acme/products/meter", #"{"id": "other"}"#).status == .badRequest
            )
            #expect(try await c.send(.put, "/api/v1/tenants/acme/products/nope", #"{}"#).status == .notFound)
            // a product in use cannot be deleted
            let inUse = try await c.send(.delete, "/api/v1/tenants/acme/products/thermo")
            #expect(inUse.status == .conflict && inUse.errorCode == "conflict")
            #expect(try await c.send(.delete, "/api/v1/tenants/acme/products/meter").status == .noContent)
            #expect(try await c.get("/api/v1/tenants/acme/products/meter").status == .notFound)
            #expect(try await c.send(.delete, "/api/v1/tenants/acme/products/meter").status == .notFound)
        }
        await h.stop()
    }

    @Test(arguments: [false, true])
    func devicesCRUDAndEffectiveSignals(sqlite: Bool) async throws {
        let h = try await ServerHarness(sqlite: sqlite)
        try await h.api { c in
            try await h.seed(c)
            #expect(
                try await c.send(.post, "/api/v1/tenants/acme/devices", #"{"uid": "t-1", "product": "thermo"}"#).status
                    == .conflict)
            let unknownProduct = try await c.send(
                .post, "/api/v1/tenants/acme/devices", #"{"uid": "t-2", "product": "nope"}"#)
            #expect(unknownProduct.status == .badRequest && unknownProduct.text.contains("create it"))
            #expect(
                try await c.send(.post, "/api/v1/tenants/acme/devices", #"{"uid": "a/b", "product": "thermo"}"#).status
                    == .badRequest)
            let t2 = try await c.send(
                .post, "/api/v1/tenants/acme/devices",
                #"{"uid": "t-2", "product": "thermo", "name": "Hall", "tags": {"site": "p1"}, "pushIntervalMillis": 60000, "signals": [{"name": "door", "type": "text"}]}"#
            )
            #expect(t2.status == .created)
            #expect((t2.object["tags"] as? [String: String]) == ["site": "p1"])
            #expect((t2.object["createdAt"] as? Int ?? 0) > 0)
            let list = try await c.json("/api/v1/tenants/acme/devices") as? [[String: Any]]
            #expect(list?.map { $0["uid"] as? String } == ["t-1", "t-2"])
            let filtered = try await c.json("/api/v1/tenants/acme/devices?product=none") as? [[String: Any]]
            #expect(filtered?.isEmpty == true)
            let signals = try await c.json("/api/v1/tenants/acme/devices/t-2/signals") as? [[String: Any]]
            #expect(signals?.map { $0["name"] as? String } == ["door", "on", "temp"])
            let put = try await c.send(
                .put, "/api/v1/tenants/acme/devices/t-2", #"{"product": "thermo", "name": "Hall 2"}"#)
            #expect(put.status == .ok && put.object["name"] as? String == "Hall 2")
            #expect(put.object["createdAt"] as? Int == t2.object["createdAt"] as? Int, "PUT keeps the creation time")
            #expect(
                try await c.send(.put, "/api/v1/tenants/acme/devices/ghost", #"{"product": "thermo"}"#).status
                    == .notFound)
            #expect(try await c.send(.delete, "/api/v1/tenants/acme/devices/t-2").status == .noContent)
            let gone = try await c.get("/api/v1/tenants/acme/devices/t-2")
            #expect(gone.status == .notFound && gone.errorCode == "unknown_device")
        }
        await h.stop()
    }

    @Test(arguments: [false, true])
    func anIssuedTokenWorksUntilRevokedAndDeviceChangesApplyAtOnce(sqlite: Bool) async throws {
        let h = try await ServerHarness(sqlite: sqlite)
        try await h.api { c in
            try await h.seed(c)
            let issued = try await c.send(.post, "/api/v1/tenants/acme/devices/t-1/tokens", #"{"label": "primary"}"#)
            #expect(issued.status == .created)
            let token = try #require(issued.object["token"] as? String)
            #expect(try await h.deviceSend(token: token, #"{"temp": 21.5}"#) == .ok)
            // the device gets a new signal: the ingestor sees it at once (its cache was invalidated)
            #expect(try await h.deviceSend(token: token, #"{"humidity": 40}"#) == .badRequest)
            #expect(
                try await c.send(
                    .put, "/api/v1/tenants/acme/devices/t-1",
                    #"{"product": "thermo", "signals": [{"name": "humidity"}]}"#
                ).status == .ok)
            #expect(try await h.deviceSend(token: token, #"{"humidity": 40}"#) == .ok)
            let labels = try await c.json("/api/v1/tenants/acme/devices/t-1/tokens") as? [[String: Any]]
            #expect(labels?.map { $0["label"] as? String } == ["primary"])
            #expect(labels?.first?["token"] == nil, "tokens are never shown again")
            #expect(try await c.send(.post, "/api/v1/tenants/acme/devices/ghost/tokens").status == .notFound)
            let revoked = try await c.send(.delete, "/api/v1/tenants/acme/devices/t-1/tokens")
            #expect(revoked.status == .ok && revoked.object["revoked"] as? Int == 1)
            #expect(try await h.deviceSend(token: token, #"{"temp": 22}"#) == .unauthorized)
            #expect((try await c.json("/api/v1/tenants/acme/devices/t-1/tokens") as? [Any])?.isEmpty == true)
        }
        await h.stop()
    }

    @Test(arguments: [false, true])
    func latestSeriesAggregatesAndCSV(sqlite: Bool) async throws {
        let h = try await ServerHarness(sqlite: sqlite)
        try await h.api { c in
            try await h.seed(c)
            let token = try #require(
                try await c.send(.post, "/api/v1/tenants/acme/devices/t-1/tokens").object["token"] as? String)
            let body = (0..<6).map { #"{"ts": \#(1_000 + $0 * 1_000), "values": {"temp": \#($0 * 2)}}"# }.joined(
                separator: ",")
            #expect(try await h.deviceSend(token: token, "[\(body)]") == .ok)
            #expect(try await h.deviceSend(token: token, #"{"ts": 500, "on": true}"#) == .ok)
            try await h.drain()

            let latest = try await c.json("/api/v1/tenants/acme/devices/t-1/latest") as? [[String: Any]]
            #expect(latest?.map { $0["signal"] as? String } == ["on", "temp"])
            #expect(latest?.last?["value"] as? Double == 10 && latest?.last?["time"] as? Int == 6_000)
            #expect(latest?.first?["value"] as? Bool == true)
            let some = try await c.json("/api/v1/tenants/acme/devices/t-1/latest?signals=temp") as? [[String: Any]]
            #expect(some?.count == 1)

            let raw =
                try await c.json("/api/v1/tenants/acme/devices/t-1/series/temp?from=2000&to=5000") as? [String: Any]
            let pts = raw?["points"] as? [[String: Any]]
            #expect(pts?.map { $0["time"] as? Int } == [2_000, 3_000, 4_000])
            #expect(pts?.map { $0["value"] as? Double } == [2, 4, 6])
            #expect(raw?["truncated"] as? Bool == false)
            let limited = try await c.get("/api/v1/tenants/acme/devices/t-1/series/temp?limit=2")
            #expect(limited.headers[HTTPField.Name("X-Truncated")!] == "true")
            #expect((limited.object["points"] as? [Any])?.count == 2)

            let csv = try await c.get("/api/v1/tenants/acme/devices/t-1/series/temp?from=1000&to=3000&format=csv")
            #expect(csv.status == .ok && csv.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(csv.text == "time,value\n1000,0.0\n2000,2.0\n")

            let mean =
                try await c.json("/api/v1/tenants/acme/devices/t-1/series/temp?from=1000&to=7000&agg=mean")
                as? [String: Any]
            let one = mean?["buckets"] as? [[String: Any]]
            #expect(one?.count == 1 && one?.first?["value"] as? Double == 5 && one?.first?["count"] as? Int == 6)
            let buckets =
                try await c.json("/api/v1/tenants/acme/devices/t-1/series/temp?from=1000&to=7000&agg=max&bucket=2s")
                as? [String: Any]
            #expect((buckets?["buckets"] as? [[String: Any]])?.map { $0["value"] as? Double } == [2, 6, 10])
            #expect(buckets?["bucketMillis"] as? Int == 2_000)
            let count = try await c.get(
                "/api/v1/tenants/acme/devices/t-1/series/temp?from=1000&to=7000&agg=count&bucket=3000&format=csv")
            #expect(count.text == "start,end,count\n1000,4000,3\n4000,7000,3\n")
            let first =
                try await c.json("/api/v1/tenants/acme/devices/t-1/series/temp?from=0&to=7000&agg=first")
                as? [String: Any]
            #expect((first?["buckets"] as? [[String: Any]])?.first?["value"] as? Double == 0)

            for bad in [
                "agg=median", "from=5&to=1", "from=yesterday", "bucket=1m", "agg=mean&bucket=0", "agg=mean&bucket=1w",
                "limit=0", "format=xml",
            ] {
                let r = try await c.get("/api/v1/tenants/acme/devices/t-1/series/temp?\(bad)")
                #expect(r.status == .badRequest && r.errorCode == "invalid_argument", "\(bad): \(r.text)")
            }
            #expect(try await c.get("/api/v1/tenants/acme/devices/ghost/series/temp").status == .notFound)
        }
        await h.stop()
    }

    @Test func exportsAreCappedByMaxExportPoints() async throws {
        let h = try await ServerHarness(maxExportPoints: 3)
        try await h.api { c in
            try await h.seed(c)
            let token = try #require(
                try await c.send(.post, "/api/v1/tenants/acme/devices/t-1/tokens").object["token"] as? String)
            let body = (0..<5).map { #"{"ts": \#($0 + 1), "temp": 1}"# }.joined(separator: ",")
            #expect(try await h.deviceSend(token: token, "[\(body)]") == .ok)
            try await h.drain()
            let r = try await c.get("/api/v1/tenants/acme/devices/t-1/series/temp?format=csv")
            #expect(r.text.split(separator: "\n").count == 4 && r.headers[HTTPField.Name("X-Truncated")!] == "true")
            #expect(
                try await c.get("/api/v1/tenants/acme/devices/t-1/series/temp?from=0&to=100&agg=mean&bucket=1").status
                    == .badRequest)
        }
        await h.stop()
    }

    @Test func metricsRendersTheRegistry() async throws {
        let h = try await ServerHarness()
        // The way iotd wires it, without bootstrapping the process-wide MetricsSystem in a test.
        let factory = PrometheusMetricsFactory(registry: h.prometheus)
        Counter(
            label: "iot_ingest_received_total", dimensions: [("transport", "http")],
            factory: factory
        )
        .increment(by: 3)
        try await h.api { c in
            let r = try await c.send(.get, "/metrics", key: nil)
            #expect(r.status == .ok && r.headers[.contentType]?.hasPrefix("text/plain") == true)
            #expect(r.text.contains(#"iot_ingest_received_total{transport="http"} 3"#), "\(r.text)")
        }
        await h.stop()
    }

    @Test func readinessFollowsTheIngestor() async throws {
        let h = try await ServerHarness(startIngestor: false)
        try await h.api { (c: APIClient) async throws in
            #expect(try await c.send(.get, "/readyz", key: nil).status == .serviceUnavailable)
            #expect(try await c.send(.get, "/healthz", key: nil).status == .ok)
        }
        await h.stop()
    }

    @Test func servesTheOpenAPIDocument() async throws {
        let h = try await ServerHarness()
        try await h.api { c in
            let r = try await c.send(.get, "/openapi.yaml", key: nil)
            #expect(r.status == .ok)
            #expect(r.text.hasPrefix("openapi: 3.1"))
            for path in [
                "/api/v1/tenants:", "/api/v1/{token}/telemetry:", "/api/v1/devices/{uid}/telemetry:", "/metrics:",
                "/readyz:",
            ] {
                #expect(r.text.contains(path), "\(path) is documented")
            }
        }
        await h.stop()
    }
}
