import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTServer
import NIOCore
import Testing

/// Issue 17, items 3 and 9: path parameters are percent-decoded on both listeners, and device and signal names
/// follow one rule on every path; a refused message registers nothing.
@Suite struct PathAndNameTests {
    @Test func pathParametersArePercentDecodedOnBothListeners() async throws {
        let h = try await ServerHarness()
        try await h.api { c in
            #expect(try await c.send(.post, "/api/v1/tenants", #"{"id": "acme"}"#).status == .created)
            #expect(
                try await c.send(
                    .post, "/api/v1/tenants/acme/products", #"{"id": "hygro", "signals": [{"name": "%RH"}]}"#
                )
                .status == .created)
            #expect(
                try await c.send(
                    .post, "/api/v1/tenants/acme/devices", #"{"uid": "urn:dev:ow:10e2", "product": "hygro"}"#
                )
                .status == .created)
            let issued = try await c.send(.post, "/api/v1/tenants/acme/devices/urn%3Adev%3Aow%3A10e2/tokens", "{}")
            #expect(issued.status == .created, "\(issued.text)")
            let token = try #require(issued.object["token"] as? String)

            // The device listener decodes its path too.
            let device = TestClient(host: "127.0.0.1", port: h.ingestPort)
            device.connect()
            let posted = try await device.execute(
                .init(
                    "/api/v1/devices/urn%3Adev%3Aow%3A10e2/telemetry", method: .post,
                    headers: [.authorization: "Bearer \(token)", .contentType: "application/json"],
                    body: ByteBuffer(string: #"{"ts": 1700000000000, "%RH": 55}"#)))
            try await device.shutdown()
            #expect(posted.status == .ok, "\(posted.body.map { String(buffer: $0) } ?? "")")
            try await h.drain()

            let latest = try await c.get("/api/v1/tenants/acme/devices/urn%3Adev%3Aow%3A10e2/latest")
            #expect(latest.status == .ok && latest.text.contains("%RH"), "\(latest.text)")
            let series = try await c.get(
                "/api/v1/tenants/acme/devices/urn%3Adev%3Aow%3A10e2/series/%25RH?from=0&to=1800000000000")
            #expect(series.status == .ok && series.text.contains("55"), "\(series.text)")
            // The raw ':' works as before; invalid percent-encoding is a 400, not a 404.
            #expect(try await c.get("/api/v1/tenants/acme/devices/urn:dev:ow:10e2/latest").status == .ok)
            #expect(try await c.get("/api/v1/tenants/acme/devices/urn%zz/latest").status == .badRequest)
        }
        await h.stop()
    }

    @Test func aRefusedMessageRegistersNothingAndNamesFollowTheAPIRules() async throws {
        let h = try await ServerHarness()
        try await h.api { c in
            let policy = #"{"unknownDevices": {"register": {"product": "any"}}, "unknownSignals": "register"}"#
            #expect(
                try await c.send(.post, "/api/v1/tenants", #"{"id": "acme", "policy": \#(policy)}"#).status == .created)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/products", #"{"id": "any"}"#).status == .created)
            #expect(
                try await c.send(.post, "/api/v1/tenants/acme/devices", #"{"uid": "gw", "product": "any"}"#).status
                    == .created)
            let issued = try await c.send(.post, "/api/v1/tenants/acme/devices/gw/tokens", "{}")
            let token = try #require(issued.object["token"] as? String)

            let long = String(repeating: "x", count: 100_000)
            for body in [
                #"{"\#(long)": 1}"#,  // "too long for the journal" came after the signal was registered
                #"{"\#(String(repeating: "y", count: 129))": 1}"#,
                #"{"a\u0000b": 1}"#, #"{"tab\there": 1}"#, #"{"ok": 1, "\u007f": 2}"#,
            ] {
                #expect(try await h.deviceSend(token: token, body) == .badRequest, "\(body.prefix(40))")
            }
            let signals = try await c.get("/api/v1/tenants/acme/devices/gw/signals")
            #expect(
                !signals.text.contains("xxxx") && !signals.text.contains("yyyy") && !signals.text.contains("ok"),
                "\(signals.text)")
            // A 128-byte name and non-ASCII are fine.
            let longest = String(repeating: "z", count: 128)
            #expect(try await h.deviceSend(token: token, #"{"\#(longest)": 1, "température": 2}"#) == .ok)
            // The API refuses what the device path refuses.
            let bad = try await c.send(
                .put, "/api/v1/tenants/acme/devices/gw", #"{"product": "any", "signals": [{"name": "a\u0001"}]}"#)
            #expect(bad.status == .badRequest, "\(bad.text)")
        }
        await h.stop()
    }

    /// Issue 17, item 14: CSV exports passed `= + - @` through (formula injection) and the download name
    /// embedded the uid as it was.
    @Test func csvExportsNeutraliseFormulasAndSanitiseTheFileName() async throws {
        let h = try await ServerHarness()
        try await h.api { c in
            #expect(try await c.send(.post, "/api/v1/tenants", #"{"id": "acme"}"#).status == .created)
            #expect(
                try await c.send(
                    .post, "/api/v1/tenants/acme/products",
                    #"{"id": "p", "signals": [{"name": "note", "type": "text"}]}"#
                ).status == .created)
            let uid = #"x"y;z"#
            #expect(
                try await c.send(.post, "/api/v1/tenants/acme/devices", #"{"uid": "x\"y;z", "product": "p"}"#).status
                    == .created)
            let issued = try await c.send(.post, "/api/v1/tenants/acme/devices/x%22y%3Bz/tokens", "{}")
            let token = try #require(issued.object["token"] as? String)
            let values = [#"=HYPERLINK(\"http://evil\")"#, "+1+1", "-2+3", "@SUM(A1)", #"\tx"#, "plain", "a,b"]
            for (i, v) in values.enumerated() {
                #expect(try await h.deviceSend(token: token, #"{"ts": \#(1000 * (i + 1)), "note": "\#(v)"}"#) == .ok)
            }
            try await h.drain()
            let csv = try await c.get("/api/v1/tenants/acme/devices/x%22y%3Bz/series/note?from=0&to=100000&format=csv")
            #expect(csv.status == .ok)
            #expect(
                csv.text == """
                    time,value
                    1000,"'=HYPERLINK(""http://evil"")"
                    2000,'+1+1
                    3000,'-2+3
                    4000,'@SUM(A1)
                    5000,'\tx
                    6000,plain
                    7000,"a,b"

                    """, "\(csv.text)")
            #expect(csv.headers[.contentDisposition] == #"attachment; filename="x_y_z-note.csv""#, "\(uid)")
        }
        await h.stop()
    }
}
