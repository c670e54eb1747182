import HTTPTypes
import Hummingbird
import IoTCore

/// Refuses every request of the routes it is attached to (the `/api` route group of
/// ``ManagementServer``) that does not present the admin key, as `Authorization: Bearer <key>` or
/// `X-API-Key: <key>`. Keys are compared in constant time.
///
/// It is group middleware and looks at no path: whatever spelling of a path the router matches to an API
/// route (`//api/v1/…`, a trailing slash), the route's middleware runs.
struct AdminKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: [UInt8]?

    init(key: String?) {
        self.key = key.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let key else {
            return JSONOutput.error(
                status: .unauthorized, code: IoTError.Code.unauthorized.name,
                message:
                    "the management API has no admin key configured; set adminAPIKey (iotd: api.adminKey) and send it as \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\""
            )
        }
        let presented = Self.presentedKey(request.headers)
        guard let presented, Self.constantTimeEqual(Array(presented.utf8), key) else {
            return JSONOutput.error(
                status: .unauthorized, code: IoTError.Code.unauthorized.name,
                message: presented == nil
                    ? "no admin key; send \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\""
                    : "the admin key is not valid; check the configured adminAPIKey")
        }
        return try await next(request, context)
    }

    static func presentedKey(_ headers: HTTPFields) -> String? {
        if let apiKey = headers[.apiKey], !apiKey.isEmpty { return apiKey }
        if let auth = headers[.authorization], auth.count > 7, auth.prefix(7).lowercased() == "bearer " {
            return String(auth.dropFirst(7))
        }
        return nil
    }

    /// Compares without an early exit, so the time taken does not tell how much of the key matched.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}

extension HTTPField.Name {
    /// `X-API-Key`.
    fileprivate static let apiKey = HTTPField.Name("X-API-Key")!
}
