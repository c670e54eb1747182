import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTServer
import Testing

/// Issue 23, item 5: `GET /api/v1/tenants/{tenant}/export` streams every raw point of several devices and signals
/// (NDJSON, CSV, InfluxDB line protocol) with no cap, in pages; the series API's `format=lp`.
@Suite struct ExportTests {
    @Test(arguments: [false, true])
    func severalDevicesAndSignalsAreExportedWholeInEachFormat(sqlite: Bool) async throws {
        let h = try await ServerHarness(maxExportPoints: 100, sqlite: sqlite)
        try await h.api { c in
            try await h.seed(c)
            #expect(
                try await c.send(.post, "/api/v1/tenants/acme/devices", #"{"uid": "t=2,x", "product": "thermo"}"#)
                    .status == .created)
            let one = try #require(
                try await c.send(.post, "/api/v1/tenants/acme/devices/t-1/tokens").object["token"] as? String)
            let two = try #require(
                try await c.send(.post, "/api/v1/tenants/acme/devices/t=2,x/tokens").object["token"] as? String)
            // 25,000 points of t-1 (three pages of 10,000), far over maxExportPoints (100): an export has no cap.
            for chunk in 0..<25 {
                let body = (0..<1_000).map { i in
                    #"{"ts": \#(1_000 + (chunk * 1_000 + i) * 10), "values": {"temp": \#(Double(chunk * 1_000 + i) / 4)}}"#
                }
                #expect(try await h.deviceSend(token: one, "[\(body.joined(separator: ","))]") == .ok)
            }
            #expect(try await h.deviceSend(token: two, #"{"ts": 5000, "temp": -1.5, "on": false}"#) == .ok)
            try await h.drain()

            let ndjson = try await c.get("/api/v1/tenants/acme/export")
            #expect(ndjson.status == .ok && ndjson.headers[.contentType] == "application/x-ndjson")
            let lines = ndjson.text.split(separator: "\n")
            #expect(lines.count == 25_002, "\(lines.count) lines")
            let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(objects.count == 25_002)
            let t1 = objects.filter { $0["device"] as? String == "t-1" }.compactMap { $0["time"] as? Int }
            #expect(t1 == (0..<25_000).map { 1_000 + $0 * 10 }, "oldest first, each once")
            #expect(objects.contains { $0["device"] as? String == "t=2,x" && $0["value"] as? Bool == false })

            let csv = try await c.get("/api/v1/tenants/acme/export?device=t%3D2%2Cx&format=csv")
            #expect(csv.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(csv.text == "device,signal,time,value\n\"t=2,x\",on,5000,false\n\"t=2,x\",temp,5000,-1.5\n")

            let escaped = try await c.get("/api/v1/tenants/acme/export?device=t%3D2%2Cx&signal=temp&format=lp")
            #expect(escaped.text == "thermo,device=t\\=2\\,x temp=-1.5 5000000000\n", "\(escaped.text)")
            let lp = try await c.get("/api/v1/tenants/acme/export?device=t-1&signal=temp&to=1021&format=lp")
            #expect(
                lp.text
                    == "thermo,device=t-1 temp=0.0 1000000000\nthermo,device=t-1 temp=0.25 1010000000\n"
                    + "thermo,device=t-1 temp=0.5 1020000000\n", "\(lp.text)")
            let series = try await c.get("/api/v1/tenants/acme/devices/t-1/series/temp?to=1011&format=lp")
            #expect(series.text == "thermo,device=t-1 temp=0.0 1000000000\nthermo,device=t-1 temp=0.25 1010000000\n")

            for (bad, status) in [
                ("export?format=xml", HTTPResponse.Status.badRequest), ("export?from=9&to=1", .badRequest),
                ("export?device=ghost", .notFound), ("devices/t-1/series/temp?agg=mean&format=lp", .badRequest),
            ] {
                #expect(try await c.get("/api/v1/tenants/acme/\(bad)").status == status, "\(bad)")
            }
            #expect(try await c.get("/api/v1/tenants/nope/export").status == .notFound)
            #expect(try await c.send(.get, "/api/v1/tenants/acme/export", key: nil).status == .unauthorized)
        }
        await h.stop()
    }

    @Test func lineProtocolEscapesWhatInfluxDBWouldMisread() {
        #expect(
            LineProtocol.line(
                measurement: "m 1,x", tags: [("device", "d=1")], field: "s p", value: .text("say \"hi\"\\\n"),
                time: 1)
                == #"m\ 1\,x,device=d\=1 s\ p="say \"hi\"\\\n" 1000000"# + "\n")
        #expect(
            LineProtocol.line(measurement: "m", tags: [("device", "d")], field: "on", value: .bool(true), time: 2)
                == "m,device=d on=true 2000000\n")
        #expect(
            LineProtocol.line(measurement: "m", tags: [("device", "d")], field: "x", value: .number(3), time: 3)
                == "m,device=d x=3.0 3000000\n")
    }
}

/// Issue 23, item 3: the console's big screens are kept per tenant through `/api/v1/tenants/{t}/dashboards`,
/// checked (an error names the tile's field), replaced and deleted.
@Suite struct DashboardAPITests {
    @Test func dashboardsAreKeptCheckedReplacedAndDeleted() async throws {
        let h = try await ServerHarness()
        try await h.api { c in
            try await h.seed(c)
            let path = "/api/v1/tenants/acme/dashboards"
            #expect(try await c.get(path).text == "[]")
            let good =
                #"{"title": "Boiler", "tiles": [{"type": "gauge", "device": "t-1", "signal": "temp", "min": 0, "max": 90}, {"type": "alarms", "width": 2}]}"#
            let saved = try await c.send(.put, path + "/boiler", good)
            #expect(saved.status == .ok && saved.object["id"] as? String == "boiler", "\(saved.text)")
            #expect((try await c.json(path) as? [[String: Any]])?.map { $0["title"] as? String } == ["Boiler"])
            #expect((try await c.json(path + "/boiler") as? [String: Any])?["tiles"] as? [Any] != nil)
            for (body, says) in [
                (
                    #"{"title": "x", "tiles": [{"type": "alarms"}, {"type": "line", "device": "t-1"}]}"#,
                    "tiles[1].signal"
                ),
                (#"{"title": "x", "tiles": [{"type": "pie"}]}"#, "tiles[0].type"),
                (
                    #"{"title": "x", "tiles": [{"type": "gauge", "device": "t-1", "signal": "temp", "min": 5, "max": 1}]}"#,
                    "tiles[0].min"
                ),
                (#"{"title": "x", "tiles": [{"type": "status"}]}"#, "tiles[0].devices"),
                (#"{"id": "other", "title": "x", "tiles": []}"#, "id:"),
                (#"{"title": "", "tiles": []}"#, "title"),
            ] {
                let r = try await c.send(.put, path + "/boiler", body)
                #expect(r.status == .badRequest && r.text.contains(says), "\(body) → \(r.text)")
            }
            #expect(try await c.send(.put, "/api/v1/tenants/nope/dashboards/a", good).status == .notFound)
            #expect(try await c.send(.delete, path + "/boiler").status == .noContent)
            #expect(try await c.get(path + "/boiler").status == .notFound)
            #expect(try await c.send(.delete, path + "/boiler").status == .notFound)
        }
        await h.stop()
    }
}
