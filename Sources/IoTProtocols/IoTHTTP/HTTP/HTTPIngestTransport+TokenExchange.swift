import Foundation
import HTTPTypes
import Hummingbird
import IoTAuth
import IoTCore

/// The body of `POST /api/v1/devices/auth`.
struct TokenExchangeRequest: Decodable {
    var username: String
    var password: String
}

extension HTTPIngestTransport {
    /// `POST /api/v1/devices/auth`: `{"username", "password"}` → a short-lived token.
    func exchangeToken(_ request: Request, context: DeviceRequestContext) async -> Response {
        guard let service = tokenService else { return exchangeDisabled() }
        let body: [UInt8]
        do {
            body = try await Self.collect(request, limit: 4096)
        } catch {
            return await refuse(
                IoTError(
                    .payloadTooLarge, "the token exchange body is over 4096 bytes; send only username and password"))
        }
        let input: TokenExchangeRequest
        do {
            input = try JSONDecoder().decode(TokenExchangeRequest.self, from: Data(body))
        } catch {
            return await refuse(
                IoTError(.malformedPayload, "send a JSON object {\"username\": \"…\", \"password\": \"…\"}"))
        }
        do {
            let session = try await service.exchange(
                username: input.username, password: input.password,
                from: AuthenticationSource(transport: name, address: context.peerAddress))
            return Self.sessionResponse(session, now: service.clock.now())
        } catch {
            return await refuse(error)
        }
    }

    /// `POST /api/v1/devices/auth/refresh` with `Authorization: Bearer <short-lived token>` → a new one.
    func refreshToken(_ request: Request, context: DeviceRequestContext) async -> Response {
        guard let service = tokenService else { return exchangeDisabled() }
        guard let token = Self.bearerToken(request.headers[.authorization]) else {
            return await refuse(
                IoTError(.unauthorized, "send the short-lived token to refresh as \"Authorization: Bearer <token>\""))
        }
        do {
            let session = try await service.refresh(
                token, from: AuthenticationSource(transport: name, address: context.peerAddress))
            return Self.sessionResponse(session, now: service.clock.now())
        } catch {
            return await refuse(error)
        }
    }

    private func exchangeDisabled() -> Response {
        IngestResponses.error(
            IoTError(.notFound, "token exchange is not enabled on this listener; authenticate with an access token"))
    }

    static func sessionResponse(_ session: DeviceAuthService.SessionToken, now: Int64) -> Response {
        IngestResponses.json(
            .ok,
            #"{"token":\#(jsonString(session.token)),"tokenType":"Bearer","expiresAt":\#(session.expiresAt),"expiresIn":\#(max(0, (session.expiresAt - now) / 1000)),"deviceUID":\#(jsonString(session.device.deviceUID))}"#
        ).response
    }

    static func collect(_ request: Request, limit: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in request.body {
            guard bytes.count + chunk.readableBytes <= limit else { throw IoTError(.payloadTooLarge, "too large") }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        return bytes
    }
}
