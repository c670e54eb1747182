import Foundation
public import Hummingbird

/// Percent-decodes the route's path parameters before the handler reads them, so that
/// `…/devices/urn%3Adev%3Aow%3A10e2/latest` reaches device `urn:dev:ow:10e2` and `…/series/%25RH` reads signal
/// `%RH`. Hummingbird's router matches and captures the path as sent (query parameters it decodes itself).
///
/// Add it to a router or route group before the routes; a parameter that is not valid percent-encoding
/// (`%zz`, or bytes that are not UTF-8) is answered 400 before the handler runs.
public struct PercentDecodingMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Creates the middleware.
    public init() {}

    /// Decodes `context.parameters` and calls `next` with them.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard context.parameters.contains(where: { $0.value.utf8.contains(UInt8(ascii: "%")) }) else {
            return try await next(request, context)
        }
        var decoded = Parameters()
        for (name, value) in context.parameters {
            guard let plain = value.removingPercentEncoding else {
                throw HTTPError(
                    .badRequest,
                    message: "path parameter '\(name)' is not valid percent-encoding (\(value)); encode '%' as %25")
            }
            decoded.append(key: name, value: Substring(plain))
        }
        var context = context
        context.coreContext.parameters = decoded
        return try await next(request, context)
    }
}
