import Foundation
import HTTPTypes
import Hummingbird
import IoTCore
import Logging
import Metrics

/// The EMQX HTTP authenticator and authorizer endpoints, answered by a ``IoTCore/BrokerAccessControl``.
///
/// - `POST /broker/v1/emqx/auth` with `username`, `password`, `clientid`, `peerhost`;
/// - `POST /broker/v1/emqx/acl` with `username`, `clientid`, `peerhost`, `action` (`publish` or
///   `subscribe`), `topic`.
///
/// Fields come as a JSON object (EMQX 5's body template), a form (`application/x-www-form-urlencoded`,
/// EMQX 4) or the query string (`GET`). The answer is `200 {"result": "allow"|"deny"|"ignore",
/// "is_superuser": false}`; an allowed connection also carries its `acl` rules (EMQX 5.8 and later
/// apply them without asking the authorizer) ending in a deny of everything else. A store failure is
/// `503`, which EMQX treats as `ignore`. The broker must present ``ManagementServer/Configuration/brokerAuthKey``
/// (`Authorization: Bearer <key>` or `X-API-Key: <key>`, a header in EMQX's HTTP authenticator settings).
extension ManagementServer {
    func brokerAuthRoutes() -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        guard let access = brokerAccess else {
            for path in ["/broker/v1/emqx/auth", "/broker/v1/emqx/acl"] {
                for method in [HTTPRequest.Method.post, .get] {
                    router.on(RouterPath(path), method: method) { _, _ -> Response in
                        throw APIError.notFound(
                            "the EMQX auth endpoints are not configured on this server; pass a BrokerAccessControl (iotd: brokerAccounts.emqx)"
                        )
                    }
                }
            }
            return router
        }
        let key = configuration.brokerAuthKey.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        if key == nil {
            logger.warning("the EMQX auth endpoints have no brokerAuthKey: every request is refused with 401")
        }
        let maxBytes = min(configuration.maxBodyBytes, 64 * 1024)
        let logger = self.logger
        for method in [HTTPRequest.Method.post, .get] {
            router.on("/broker/v1/emqx/auth", method: method) { request, _ in
                if let refused = Self.refuseBroker(request, key: key) { return refused }
                return await Self.answer(kind: "auth", logger: logger) {
                    let fields = try await BrokerAuthFields.read(request, maxBytes: maxBytes)
                    return try await access.authenticate(
                        username: fields["username"], password: fields["password"], clientID: fields["clientid"],
                        peerHost: fields["peerhost"])
                }
            }
            router.on("/broker/v1/emqx/acl", method: method) { request, _ in
                if let refused = Self.refuseBroker(request, key: key) { return refused }
                return await Self.answer(kind: "acl", logger: logger) {
                    let fields = try await BrokerAuthFields.read(request, maxBytes: maxBytes)
                    let actionName = (fields["action"] ?? "").lowercased()
                    guard let action = BrokerAccountPolicy.Action(rawValue: actionName) else {
                        throw APIError.badRequest(
                            "action \"\(actionName)\" is not publish or subscribe; set the authorizer body's action to ${action}"
                        )
                    }
                    guard let topic = fields["topic"], !topic.isEmpty else {
                        throw APIError.badRequest(
                            "the request lacks the topic; set the authorizer body's topic to ${topic}")
                    }
                    return try await access.authorize(
                        username: fields["username"], clientID: fields["clientid"], action: action, topic: topic)
                }
            }
        }
        return router
    }

    private static func refuseBroker(_ request: Request, key: [UInt8]?) -> Response? {
        guard let key else {
            return JSONOutput.error(
                status: .unauthorized, code: IoTError.Code.unauthorized.name,
                message:
                    "the broker auth endpoints have no key configured; set brokerAuthKey (iotd: emqxAuth.keyFile) and send it as \"Authorization: Bearer <key>\""
            )
        }
        guard let presented = AuthenticationMiddleware.presentedKey(request.headers),
            AuthenticationMiddleware.constantTimeEqual(Array(presented.utf8), key)
        else {
            return JSONOutput.error(
                status: .unauthorized, code: IoTError.Code.unauthorized.name,
                message:
                    "the broker auth key is missing or not valid; configure the authenticator's Authorization header")
        }
        return nil
    }

    private static func answer(kind: String, logger: Logger, _ decide: () async throws -> BrokerAccessControl.Decision)
        async -> Response
    {
        do {
            let decision = try await decide()
            Counter(
                label: "iot_broker_auth_total", dimensions: [("endpoint", kind), ("result", decision.result.rawValue)]
            )
            .increment()
            logger.debug(
                "broker \(kind) decision",
                metadata: ["result": "\(decision.result.rawValue)", "reason": "\(decision.reason)"])
            return BrokerAuthAnswer(decision, includeRules: kind == "auth").response()
        } catch let error as APIError {
            return JSONOutput.error(status: error.status, code: error.code, message: error.message)
        } catch {
            logger.error("broker \(kind) request failed", metadata: ["error": "\(error)"])
            Counter(label: "iot_broker_auth_total", dimensions: [("endpoint", kind), ("result", "error")]).increment()
            let message = (error as? IoTError)?.message ?? "\(error)"
            return JSONOutput.error(
                status: .serviceUnavailable, code: IoTError.Code.unavailable.name,
                message: "cannot decide now: \(message); the broker treats this as ignore")
        }
    }
}

/// The JSON answer EMQX reads.
struct BrokerAuthAnswer: Encodable {
    struct Rule: Encodable {
        var permission: String
        var action: String
        var topic: String
    }
    var result: String
    var isSuperuser: Bool
    var acl: [Rule]?

    enum CodingKeys: String, CodingKey {
        case result
        case isSuperuser = "is_superuser"
        case acl
    }

    init(_ decision: BrokerAccessControl.Decision, includeRules: Bool) {
        result = decision.result.rawValue
        isSuperuser = false
        if includeRules, decision.result == .allow {
            acl =
                decision.rules.map { Rule(permission: "allow", action: $0.action.rawValue, topic: $0.filter) }
                + [Rule(permission: "deny", action: "all", topic: "#")]
        }
    }

    func response() -> Response {
        (try? JSONOutput.response(self))
            ?? JSONOutput.error(status: .internalServerError, code: "storage", message: "cannot encode the answer")
    }
}

/// The request's fields, from a JSON object, a form, or the query string.
enum BrokerAuthFields {
    static func read(_ request: Request, maxBytes: Int) async throws -> [String: String] {
        var fields: [String: String] = [:]
        for (name, value) in request.uri.queryParameters {
            fields[String(name)] = String(value)
        }
        guard request.method != .get else { return fields }
        let body = try await JSONOutput.body(of: request, maxBytes: maxBytes)
        let type = request.headers[.contentType]?.lowercased() ?? "application/json"
        if type.hasPrefix("application/x-www-form-urlencoded") {
            for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = decodeForm(parts[0])
                fields[name] = parts.count > 1 ? decodeForm(parts[1]) : ""
            }
            return fields
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw APIError.badRequest("the body is not a JSON object; send {\"username\": \"${username}\", …}")
        }
        for (name, value) in object {
            switch value {
            case let s as String: fields[name] = s
            case let n as NSNumber: fields[name] = n.stringValue
            default: continue
            }
        }
        return fields
    }

    private static func decodeForm(_ text: Substring) -> String {
        text.replacing("+", with: " ").removingPercentEncoding ?? String(text)
    }
}
