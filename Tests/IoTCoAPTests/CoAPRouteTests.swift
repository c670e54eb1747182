import IoTCore
import IoTProtocols
import Testing

@testable import IoTCoAP

/// How a request's Uri-Path and Uri-Query name the device's token (no network).
@Suite("CoAP telemetry routes")
struct CoAPRouteTests {
    @Test(
        "the ThingsBoard form, with or without a leading slash, and escaped",
        arguments: [
            ("api/v1/abc123/telemetry", "abc123"),
            ("/api/v1/abc123/telemetry", "abc123"),
            ("api/v1/a%2Db/telemetry", "a-b"),  // escapes take the full reader
            ("api%2Fv1%2Fxyz%2Ftelemetry", "xyz"),  // a whole path in one Uri-Path option, escaped by libcoap
            ("api%2fv1%2fxyz%2ftelemetry", "xyz"),
            ("api/v1%2Fxyz/telemetry", "xyz"),
        ])
    func thingsBoardForm(path: String, token: String) throws {
        #expect(try CoAPTelemetryRoute.parse(path: path, query: "") == CoAPTelemetryRoute(token: token))
        // Only an escape other than %2F takes the full reader; everything else is read on the fast path.
        #expect(CoAPTelemetryRoute.thingsBoardToken(path) == (path.contains("%2D") ? nil : token))
    }

    @Test("the token in the query")
    func queryForm() throws {
        #expect(
            try CoAPTelemetryRoute.parse(path: "telemetry", query: "x=1&token=t0k") == CoAPTelemetryRoute(token: "t0k"))
        #expect(
            try CoAPTelemetryRoute.parse(path: "api/v1/telemetry", query: "access_token=t1")
                == CoAPTelemetryRoute(token: "t1"))
    }

    @Test(
        "anything else is refused with what to send instead",
        arguments: [
            ("api/v1//telemetry", IoTError.Code.unauthorized),  // empty segments are dropped: the query form, no token
            ("api/v1/a/b/telemetry", .notFound),
            ("api/v1/abc/telemetryx", .notFound),
            ("api/v2/abc/telemetry", .notFound),
            ("api/v1/abc/telemetry/more", .notFound),
            ("api%2Fv1%2Fa%2Fb%2Ftelemetry", .notFound),
            ("telemetry", .unauthorized),
        ])
    func refused(path: String, code: IoTError.Code) {
        #expect(throws: IoTError.self) { try CoAPTelemetryRoute.parse(path: path, query: "") }
        do {
            _ = try CoAPTelemetryRoute.parse(path: path, query: "")
        } catch {
            #expect(error.code == code, "\(error)")
        }
    }

    @Test(
        "a receipt's answer is the JSON of its three numbers",
        arguments: [
            Receipt(sequence: 0, records: 0, points: 0),
            Receipt(sequence: 7, records: 1, points: 2),
            Receipt(sequence: 1_234_567_890_123, records: 10, points: 4_096),
            Receipt(sequence: .max, records: .max, points: 99),
        ])
    func receiptBody(receipt: Receipt) {
        let reply = CoAPReply.receipt(receipt)
        #expect(reply.code == 204)
        #expect(
            String(decoding: reply.body, as: UTF8.self)
                == #"{"sequence":\#(receipt.sequence),"records":\#(receipt.records),"points":\#(receipt.points)}"#)
    }
}
