import Foundation
import HTTPTypes
import Hummingbird
import IoTCore

/// Builds JSON and CSV responses, and reads JSON request bodies.
enum JSONOutput {
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(status: HTTPResponse.Status, code: String, message: String) -> Response {
        let body = #"{"error":\#(jsonString(code)),"message":\#(jsonString(message))}"#
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func text(_ text: String, contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// Decodes a JSON body of at most `maxBytes`; 400 with the decoder's reason when it does not fit `T`.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, maxBytes: Int) async throws -> T {
        try decode(T.self, from: try await body(of: request, maxBytes: maxBytes))
    }

    /// The body of `request`, at most `maxBytes` (413 otherwise); an empty body reads as `{}`.
    static func body(of request: Request, maxBytes: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in request.body {
            guard bytes.count + chunk.readableBytes <= maxBytes else {
                throw APIError(.contentTooLarge, .payloadTooLarge, "the request body is over \(maxBytes) bytes")
            }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        if bytes.isEmpty { bytes = Array("{}".utf8) }
        return bytes
    }

    /// Decodes JSON `bytes`; 400 with the decoder's reason when they do not fit `T`.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, _) {
            throw APIError.badRequest("the JSON body lacks the field \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, context) {
            throw APIError.badRequest(
                "the JSON field \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type: \(context.debugDescription)"
            )
        } catch let DecodingError.valueNotFound(_, context) {
            throw APIError.badRequest(
                "the JSON field \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" is null; give it a value"
            )
        } catch let DecodingError.dataCorrupted(context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw APIError.badRequest(
                "the JSON body cannot be read\(path.isEmpty ? "" : " at \"\(path)\""): \(context.debugDescription)")
        } catch {
            throw APIError.badRequest("the JSON body cannot be read: \(error)")
        }
    }
}

/// A signal value as plain JSON: a number, a string, a boolean, or `null`.
struct JSONValue: Encodable {
    var value: SignalValue?

    init(_ value: SignalValue?) { self.value = value }
    init(_ number: Double?) { self.value = number.map { .number($0) } }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch value {
        case .number(let v)?: try c.encode(v)
        case .text(let s)?: try c.encode(s)
        case .bool(let b)?: try c.encode(b)
        case nil: try c.encodeNil()
        }
    }
}
