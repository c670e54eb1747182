package import IoTCore

/// What the server answers one request with: a CoAP code (class × 100 + detail, e.g. 204) and a JSON body.
package struct CoAPReply: Sendable {
    /// The response code, class × 100 + detail (`204` is 2.04).
    package var code: Int
    /// The JSON body.
    package var body: [UInt8]
    /// Max-Age in seconds (a retry hint with 4.29 and 5.03), or `nil`.
    package var maxAge: Int?

    /// `2.04 {"sequence":…,"records":…,"points":…}`: only ever built from a journal receipt.
    static func receipt(_ receipt: Receipt) -> CoAPReply {
        // Written byte by byte: this runs on the I/O thread for every request, and string interpolation costs
        // more than the rest of the answer.
        var body: [UInt8] = []
        body.reserveCapacity(64)
        body.append(contentsOf: #"{"sequence":"#.utf8)
        appendDecimal(receipt.sequence, to: &body)
        body.append(contentsOf: #","records":"#.utf8)
        appendDecimal(UInt64(max(0, receipt.records)), to: &body)
        body.append(contentsOf: #","points":"#.utf8)
        appendDecimal(UInt64(max(0, receipt.points)), to: &body)
        body.append(UInt8(ascii: "}"))
        return CoAPReply(code: 204, body: body)
    }

    /// Appends the decimal digits of `value`.
    private static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        let start = out.count
        var v = value
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(v % 10))
            v /= 10
        } while v > 0
        out[start...].reverse()
    }

    /// `4.xx`/`5.xx` with the diagnostic payload `{"error": "<code name>", "message": "<what to do>"}`.
    package static func error(_ error: IoTError, code: Int? = nil) -> CoAPReply {
        CoAPReply(
            code: code ?? Self.code(for: error),
            body: Array(#"{"error":\#(jsonString(error.code.name)),"message":\#(jsonString(error.message))}"#.utf8),
            maxAge: error.retryAfterMillis.map { max(1, Int(($0 + 999) / 1000)) })
    }

    /// The CoAP response code for an error's code.
    package static func code(for error: IoTError) -> Int {
        switch error.code {
        case .malformedPayload, .invalidValue, .unknownSignal, .invalidArgument: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .unknownDevice, .notFound: 404
        case .payloadTooLarge: 413
        case .rateLimited: 429
        case .backpressure, .shutdown, .unavailable, .timeout, .journal: 503  // .journal: a full disk, retry
        default: 500
        }
    }
}

/// The device's token and the body format of a telemetry request, read from its URI and options.
///
/// URI forms (the token is a device access token):
/// - `coap://host/api/v1/{token}/telemetry`: ThingsBoard's CoAP device API;
/// - `coap://host/telemetry?token={token}` (also `/api/v1/telemetry?token=…`);
/// - `coap://host/api/v1/devices/{uid}/telemetry?token={token}`, as the HTTP listener's `…/devices/{uid}/telemetry`
///   (there with `Authorization: Bearer`): the token's device must be `{uid}`, or a gateway for it.
package struct CoAPTelemetryRoute: Equatable {
    /// The device access token.
    package var token: String
    /// The device the URI names (`…/devices/{uid}/telemetry`), which the token's device sends for.
    package var claimedUID: String? = nil

    /// Reads the route from the Uri-Path options joined by `/` and the Uri-Query options joined by `&`.
    ///
    /// libcoap percent-encodes a `/` inside one Uri-Path option (`%2F`); it is read as a separator here, so a
    /// client that puts the whole path into one option (as some constrained clients do) is understood too.
    package static func parse(path: String, query: String) throws(IoTError) -> CoAPTelemetryRoute {
        if let token = thingsBoardToken(path) { return CoAPTelemetryRoute(token: token) }
        let segments = percentDecoded(path).split(separator: "/", omittingEmptySubsequences: true)
        if segments.count == 4, segments[0] == "api", segments[1] == "v1", segments[3] == "telemetry" {
            return CoAPTelemetryRoute(token: String(segments[2]))
        }
        func queryToken() -> String? {
            for pair in query.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if parts.count == 2, parts[0] == "token" || parts[0] == "access_token", !parts[1].isEmpty {
                    return String(parts[1])
                }
            }
            return nil
        }
        if segments == ["telemetry"] || segments == ["api", "v1", "telemetry"] {
            guard let token = queryToken() else {
                throw IoTError(
                    .unauthorized, "no device token; post to coap://host/telemetry?token=<device access token>")
            }
            return CoAPTelemetryRoute(token: token)
        }
        if segments.count == 5, segments[0] == "api", segments[1] == "v1", segments[2] == "devices",
            segments[4] == "telemetry"
        {
            guard let token = queryToken() else {
                throw IoTError(
                    .unauthorized,
                    "no device token; post to coap://host/api/v1/devices/\(segments[3])/telemetry?token=<device access token>"
                )
            }
            return CoAPTelemetryRoute(token: token, claimedUID: String(segments[3]))
        }
        throw IoTError(
            .notFound,
            "unknown resource \"/\(path)\"; post telemetry to /api/v1/<device access token>/telemetry, /telemetry?token=<device access token> or /api/v1/devices/<uid>/telemetry?token=<device access token>"
        )
    }
}

extension CoAPTelemetryRoute {
    /// The token of the common form `api/v1/{token}/telemetry`, read from the path's UTF-8 bytes without
    /// splitting or decoding it: `/` and `%2F` (a client that sends the whole path as one Uri-Path option,
    /// which libcoap escapes) separate segments, empty segments are skipped. `nil` for anything else (another
    /// form, another escape), which ``parse(path:query:)`` then reads in full.
    static func thingsBoardToken(_ path: String) -> String? {
        var path = path
        return path.withUTF8 { bytes -> String? in
            let slash = UInt8(ascii: "/")
            let percent = UInt8(ascii: "%")
            var segments: [Range<Int>] = []
            segments.reserveCapacity(4)
            var i = 0
            var start = 0
            func close(_ end: Int) -> Bool {
                if end > start {
                    guard segments.count < 4 else { return false }
                    segments.append(start..<end)
                }
                return true
            }
            while i < bytes.count {
                if bytes[i] == slash {
                    guard close(i) else { return nil }
                    i += 1
                    start = i
                } else if bytes[i] == percent {
                    guard i + 2 < bytes.count, bytes[i + 1] == UInt8(ascii: "2"),
                        bytes[i + 2] | 0x20 == UInt8(ascii: "f"), close(i)
                    else { return nil }
                    i += 3
                    start = i
                } else {
                    i += 1
                }
            }
            guard close(bytes.count), segments.count == 4 else { return nil }
            func equals(_ r: Range<Int>, _ text: StaticString) -> Bool {
                r.count == text.utf8CodeUnitCount
                    && UnsafeBufferPointer(rebasing: bytes[r]).elementsEqual(
                        UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
            }
            guard equals(segments[0], "api"), equals(segments[1], "v1"), equals(segments[3], "telemetry") else {
                return nil
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[segments[2]]), as: UTF8.self)
        }
    }
}

/// `text` with `%XX` escapes decoded (invalid escapes are kept as they are).
func percentDecoded(_ text: String) -> String {
    guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
    var out: [UInt8] = []
    let bytes = Array(text.utf8)
    var i = 0
    func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    while i < bytes.count {
        if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// CoAP Content-Format numbers the listener reads (RFC 7252 §12.3, RFC 8428).
package enum CoAPContentFormat {
    /// `application/json`.
    package static let json = 50
    /// `application/senml+json`.
    package static let senmlJSON = 110

    /// The media type a Content-Format stands for, as put in ``IoTCore/InboundMessage/contentType``.
    package static func mediaType(_ format: Int?) -> String? {
        switch format {
        case nil: nil
        case json: "application/json"
        case senmlJSON: "application/senml+json"
        case 0: "text/plain"
        case 60: "application/cbor"
        case 112: "application/senml+cbor"
        case let f?: "application/x-coap-format-\(f)"
        }
    }
}
