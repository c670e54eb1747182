import HTTPTypes
import Hummingbird
import IoTCore

/// The responses of the device listener: a receipt or a JSON error `{"error": …, "message": …}`.
enum IngestResponses {
    /// `200 {"sequence":…,"points":…}`.
    static func receipt(_ receipt: Receipt) -> Response {
        json(.ok, #"{"sequence":\#(receipt.sequence),"records":\#(receipt.records),"points":\#(receipt.points)}"#)
    }

    /// `200` with an empty body, as ThingsBoard answers.
    static let empty = Response(status: .ok, headers: [.contentLength: "0"])

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
        var response = json(
            status ?? Self.status(for: error),
            #"{"error":\#(jsonString(error.code.name)),"message":\#(jsonString(error.message))}"#)
        if let millis = error.retryAfterMillis {
            response.headers[.retryAfter] = String(max(1, (millis + 999) / 1000))
        } else if error.code == .journal {
            response.headers[.retryAfter] = "1"
        }
        return response
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
