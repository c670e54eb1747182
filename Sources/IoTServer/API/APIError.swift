import HTTPTypes
import Hummingbird
import IoTCore

/// An error answered as JSON `{"error": "<code name>", "message": "<what to do>"}`.
struct APIError: HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String

    init(_ status: HTTPResponse.Status, _ code: IoTError.Code, _ message: String) {
        self.status = status
        self.code = code.name
        self.message = message
    }

    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, .invalidArgument, message) }
    static func notFound(_ message: String) -> APIError { APIError(.notFound, .notFound, message) }

    /// Maps a store or issuer error: ``IoTError`` codes keep their meaning, anything else is 500.
    init(_ error: any Error) {
        if let api = error as? APIError {
            self = api
        } else if let iot = error as? IoTError {
            let status: HTTPResponse.Status =
                switch iot.code {
                case .notFound, .unknownDevice: .notFound
                case .conflict: .conflict
                case .invalidArgument, .malformedPayload, .invalidValue, .unknownSignal: .badRequest
                case .unauthorized: .unauthorized
                case .forbidden: .forbidden
                case .rateLimited: .tooManyRequests
                case .unavailable, .timeout, .backpressure, .shutdown: .serviceUnavailable
                default: .internalServerError
                }
            self.init(status, iot.code, iot.message)
        } else {
            self.init(.internalServerError, .storage, "the request failed: \(error); see the server log")
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONOutput.error(status: status, code: code, message: message)
    }
}
