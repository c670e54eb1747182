@testable import IoTProtocols
import IoTCore
import Testing

/// How a request's Uri-Path and Uri-Query name the device's token (no network).
@Suite("CoAP telemetry routes")
struct CoAPRouteTests {
    @Test("the ThingsBoard form, with or without a leading slash, and escaped", arguments: [
        ("api/v1/abc123/telemetry", "abc123"),
        ("/api/v1/abc123/telemetry", "abc123"),
        ("api/v1/a%2Db/telemetry", "a-b"),  // escapes take the full reader
        ("api%2Fv1%2Fxyz%2Ftelemetry", "xyz"),  // a whole path in one Uri-Path option
    ])
    func thingsBoardForm(path: String, token: String) throws {
        #expect(try CoAPTelemetryRoute.parse(path: path, query: "") == CoAPTelemetryRoute(token: token))
    }

    @Test("the token in the query")
    func queryForm() throws {
        #expect(try CoAPTelemetryRoute.parse(path: "telemetry", query: "x=1&token=t0k") == CoAPTelemetryRoute(token: "t0k"))
        #expect(try CoAPTelemetryRoute.parse(path: "api/v1/telemetry", query: "access_token=t1") == CoAPTelemetryRoute(token: "t1"))
    }

    @Test("anything else is refused with what to send instead", arguments: [
        ("api/v1//telemetry", IoTError.Code.unauthorized),  // empty segments are dropped: the query form, no token
        ("api/v1/a/b/telemetry", .notFound),
        ("api/v1/abc/telemetryx", .notFound),
        ("api/v2/abc/telemetry", .notFound),
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
}
