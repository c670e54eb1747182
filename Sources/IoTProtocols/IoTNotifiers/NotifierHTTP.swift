import Crypto
import Foundation
import IoTCore

/// What every HTTP channel shares: one POST through ``CurlClient``, HTTP status → ``IoTError``, vendor
/// `code`/`errcode` replies → ``IoTError``, JSON and signatures.
enum NotifierHTTP {
    /// Sends `request`; a 2xx answer is returned, anything else thrown: 401/403 as
    /// ``IoTError/Code/unauthorized`` (dead letter), 408/425/429/5xx as ``IoTError/Code/unavailable``
    /// (retried), other 4xx as ``IoTError/Code/invalidArgument`` (dead letter).
    static func send(_ request: CurlRequest, channel: String) async throws -> CurlResponse {
        let r = try await CurlClient.perform(request)
        let place = "\(channel): \(CurlClient.redact(request.url))"
        let snippet = String(r.text.prefix(200))
        switch r.status {
        case 200..<300:
            return r
        case 401, 403:
            throw IoTError(
                .unauthorized,
                "\(place) answered HTTP \(r.status) \(snippet); check the channel's credentials or secret")
        case 408, 425, 429, 500...:
            throw IoTError(.unavailable, "\(place) answered HTTP \(r.status) \(snippet)")
        default:
            throw IoTError(
                .invalidArgument, "\(place) answered HTTP \(r.status) \(snippet); the request was refused as it is")
        }
    }

    /// The `{"code"|"errcode"|"StatusCode": n, "msg"|"errmsg"|"StatusMessage": "…"}` reply of the Chinese
    /// vendors: 0 is success; `retry` codes are worth retrying, `auth` codes are credential problems,
    /// any other non-zero code is permanent.
    static func checkVendorReply(_ r: CurlResponse, channel: String, auth: Set<Int>, retry: Set<Int>) throws {
        struct Reply: Decodable {
            var code: Int?
            var msg: String?
            var errcode: Int?
            var errmsg: String?
            // Slack-style vendors' keys.
            // swift-format-ignore: AlwaysUseLowerCamelCase
            var StatusCode: Int?
            // swift-format-ignore: AlwaysUseLowerCamelCase
            var StatusMessage: String?
        }
        guard let reply = try? JSONDecoder().decode(Reply.self, from: Data(r.body)) else {
            throw IoTError(.unavailable, "\(channel): the answer is not the vendor's JSON reply: \(r.text.prefix(200))")
        }
        let code = reply.code ?? reply.errcode ?? reply.StatusCode ?? 0
        guard code != 0 else { return }
        let message = reply.msg ?? reply.errmsg ?? reply.StatusMessage ?? ""
        let text = "\(channel): the vendor answered code \(code) \"\(message)\""
        if retry.contains(code) {
            throw IoTError(.unavailable, text, nativeCode: Int32(truncatingIfNeeded: code), domain: .vendor)
        }
        if auth.contains(code) {
            throw IoTError(
                .unauthorized, text + "; check the channel's secret, key or token",
                nativeCode: Int32(truncatingIfNeeded: code), domain: .vendor)
        }
        throw IoTError(.invalidArgument, text, nativeCode: Int32(truncatingIfNeeded: code), domain: .vendor)
    }

    /// POSTs `payload` as JSON to `url` through ``send(_:channel:)``.
    static func postJSON(
        _ payload: some Encodable, to url: String, timeout: Duration, channel: String
    ) async throws -> CurlResponse {
        try await send(
            CurlRequest(
                url: url, headers: [("Content-Type", "application/json")], body: json(payload),
                timeout: timeout),
            channel: channel)
    }

    static func json(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Percent-encodes everything but unreserved characters (RFC 3986).
    static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E:
                out.unicodeScalars.append(Unicode.Scalar(b))
            default: out += "%" + String(hex([b]).uppercased())
            }
        }
        return out
    }

    /// `s` cut to at most `maxBytes` of UTF-8 without splitting a character.
    static func truncate(_ s: String, maxBytes: Int) -> String {
        guard s.utf8.count > maxBytes else { return s }
        var out = ""
        var n = 0
        for c in s {
            let k = c.utf8.count
            if n + k > maxBytes - 3 { break }
            out.append(c)
            n += k
        }
        return out + "…"
    }

    static func appendQuery(_ url: String, _ query: String) -> String {
        url + (url.contains("?") ? "&" : "?") + query
    }

    static func nowMillis() -> Int64 { SystemClock().now() }
}
