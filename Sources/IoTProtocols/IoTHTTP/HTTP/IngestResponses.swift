import HTTPTypes
import Hummingbird
import IoTCore

/// A reply of the device listener: its status, headers and body, written by Hummingbird (``response``) or
/// on the connection's event loop (``TelemetryFastPath``).
struct IngestReply {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer

    /// The reply as Hummingbird's response.
    var response: Response {
        Response(status: status, headers: headers, body: ResponseBody(byteBuffer: body))
    }
}

/// The responses of the device listener: a receipt or a JSON error `{"error": …, "message": …}`.
enum IngestResponses {
    /// `200 {"sequence":…,"records":…,"points":…}`.
    static func receiptReply(_ receipt: Receipt) -> IngestReply {
        json(.ok, #"{"sequence":\#(receipt.sequence),"records":\#(receipt.records),"points":\#(receipt.points)}"#)
    }

    /// `200` with an empty body, as ThingsBoard answers.
    static let emptyReply = IngestReply(status: .ok, headers: [.contentLength: "0"], body: ByteBuffer())

    /// The HTTP status for an error's code.
    static func status(for error: IoTError) -> HTTPResponse.Status {
        switch error.code {
        case .malformedPayload, .invalidValue, .unknownSignal, .invalidArgument: .badRequest
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .unknownDevice, .notFound: .notFound
        case .payloadTooLarge: .contentTooLarge
        case .rateLimited: .tooManyRequests
        // The journal could not take the message (a full disk): nothing was acknowledged; retry shortly.
        case .backpressure, .shutdown, .unavailable, .timeout, .journal: .serviceUnavailable
        default: .internalServerError
        }
    }

    /// A JSON error response; `Retry-After` (whole seconds, rounded up) when the error carries a delay.
    static func error(_ error: IoTError, status: HTTPResponse.Status? = nil) -> Response {
        errorReply(error, status: status).response
    }

    /// ``error(_:status:)`` as a reply.
    static func errorReply(_ error: IoTError, status: HTTPResponse.Status? = nil) -> IngestReply {
        var reply = json(
            status ?? Self.status(for: error),
            #"{"error":\#(jsonString(error.code.name)),"message":\#(jsonString(error.message))}"#)
        if let millis = error.retryAfterMillis {
            reply.headers[.retryAfter] = String(max(1, (millis + 999) / 1000))
        } else if error.code == .journal {
            reply.headers[.retryAfter] = "1"
        }
        return reply
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> IngestReply {
        IngestReply(status: status, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
    }
}
