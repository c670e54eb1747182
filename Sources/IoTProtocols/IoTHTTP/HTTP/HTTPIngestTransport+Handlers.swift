import HTTPTypes
import Hummingbird
import IoTAuth
import IoTCore
import Logging

extension HTTPIngestTransport {
    /// `POST /api/v1/devices/{uid}/telemetry` with a bearer token.
    func deviceTelemetry(_ request: Request, context: DeviceRequestContext) async -> Response {
        let uid = context.parameters.get("uid") ?? ""
        if let tooLarge = refuseDeclaredSize(request) { return tooLarge }
        var presented = Self.credential(request.headers[.authorization])
        if presented == nil, configuration.tls.map({ $0.clientCertificates != .none }) == true {
            presented = await PeerCertificate.of(context.channel)?.credential
        }
        guard let credential = presented else {
            return refuse(
                IoTError(
                    .unauthorized,
                    "no device credential; send \"Authorization: Bearer <device access token>\" or \"Authorization: Basic <base64 of username:password>\""
                ))
        }
        let identity: DeviceIdentity
        switch await authenticate(credential, context: context) {
        case .device(let id): identity = id
        case .refused(let response): return response
        }
        guard identity.deviceUID == uid else {
            return refuse(
                IoTError(
                    .forbidden,
                    "this token belongs to another device; post to /api/v1/devices/<that device's uid>/telemetry"))
        }
        let contentType = Self.mediaType(request.headers[.contentType])
        // A type JSON and SenML do not read is still fine when the product names its parser (a script
        // reading CSV, say): the ingestor uses the product's parser whatever the transport passes.
        var chosen = parser(for: contentType)
        if chosen == nil, (try? await ingestor.productParserName(for: identity)) != nil { chosen = jsonParser }
        guard let parser = chosen else {
            let supported = (["application/json"] + configuration.senmlContentTypes.sorted()).joined(separator: " or ")
            return refuse(
                IoTError(
                    .malformedPayload, "content type \"\(contentType ?? "")\" is not supported; send \(supported)"),
                status: .unsupportedMediaType)
        }
        return await ingest(request, identity: identity, contentType: contentType, parser: parser) {
            IngestResponses.receipt($0)
        }
    }

    /// `POST /api/v1/{token}/telemetry`: ThingsBoard's device API.
    func thingsBoardTelemetry(_ request: Request, context: DeviceRequestContext) async -> Response {
        if let tooLarge = refuseDeclaredSize(request) { return tooLarge }
        let identity: DeviceIdentity
        switch await authenticate(.token(context.parameters.get("token") ?? ""), context: context) {
        case .device(let id): identity = id
        case .refused(let response): return response
        }
        let contentType = Self.mediaType(request.headers[.contentType])
        let parser: any Parser =
            contentType.map { configuration.senmlContentTypes.contains($0) } == true ? senmlParser : thingsBoardParser
        return await ingest(request, identity: identity, contentType: contentType, parser: parser) { _ in
            IngestResponses.empty
        }
    }

    // MARK: Steps

    /// SenML for the configured SenML types; JSON for `application/json`, other `+json` types and no type;
    /// `nil` otherwise.
    private func parser(for contentType: String?) -> (any Parser)? {
        guard let contentType else { return jsonParser }
        if configuration.senmlContentTypes.contains(contentType) { return senmlParser }
        if contentType == "application/json" || contentType.hasSuffix("+json") { return jsonParser }
        return nil
    }

    private enum Authentication {
        case device(DeviceIdentity)
        case refused(Response)
    }

    private func authenticate(_ credential: DeviceCredential, context: DeviceRequestContext) async -> Authentication {
        let key = Self.cacheKey(credential)
        if let cached = authenticationCache?.identity(for: key) { return .device(cached) }
        do {
            let identity = try await authenticator.authenticate(
                credential, source: AuthenticationSource(transport: name, address: context.peerAddress))
            authenticationCache?.remember(identity, for: key)
            return .device(identity)
        } catch {
            if error.code != .unauthorized {
                logger.error("device authentication failed", metadata: ["error": "\(error)"])
            }
            return .refused(refuse(error))
        }
    }

    private func ingest(
        _ request: Request, identity: DeviceIdentity, contentType: String?, parser: any Parser,
        success: (Receipt) -> Response
    ) async -> Response {
        let payload: [UInt8]
        do {
            guard let body = try await collectBody(request) else {
                return refuse(tooLargeError())
            }
            payload = body
        } catch {
            logger.debug("reading a request body failed", metadata: ["error": "\(error)"])
            return IngestResponses.error(IoTError(.malformedPayload, "the request body could not be read: \(error)"))
        }
        let message = InboundMessage(
            transport: name, deviceUID: identity.deviceUID, topic: request.uri.path, contentType: contentType,
            payload: payload)
        do {
            return success(try await ingestor.ingest(message, parser: parser, identity: identity))
        } catch {
            if IngestResponses.status(for: error) == .internalServerError {
                logger.error("ingest failed", metadata: ["error": "\(error)", "device": "\(identity)"])
            }
            return IngestResponses.error(error)
        }
    }

    /// The body, or `nil` when it is over the limit.
    private func collectBody(_ request: Request) async throws -> [UInt8]? {
        let limit = configuration.maxBodyBytes
        var bytes: [UInt8] = []
        for try await chunk in request.body {
            guard bytes.count + chunk.readableBytes <= limit else { return nil }
            if bytes.isEmpty {
                bytes = Array(chunk.readableBytesView)
            } else {
                bytes.append(contentsOf: chunk.readableBytesView)
            }
        }
        return bytes
    }

    private func refuseDeclaredSize(_ request: Request) -> Response? {
        guard let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > configuration.maxBodyBytes
        else { return nil }
        return refuse(tooLargeError())
    }

    private func tooLargeError() -> IoTError {
        IoTError(
            .payloadTooLarge,
            "the request body is over the limit of \(configuration.maxBodyBytes) bytes; send fewer records per request")
    }

    /// Counts a request the ingestor never saw and answers it.
    func refuse(_ error: IoTError, status: HTTPResponse.Status? = nil) -> Response {
        ingestor.recordRejected(transport: name, error: error)
        return IngestResponses.error(error, status: status)
    }

    // MARK: Header parsing

    /// A bearer token or Basic username/password from an `Authorization` header, or `nil`.
    static func credential(_ header: String?) -> DeviceCredential? {
        if let token = bearerToken(header) { return .token(token) }
        guard let header, header.count > 6, header.prefix(6).lowercased() == "basic " else { return nil }
        guard let decoded = Base64.decode(String(header.dropFirst(6).drop { $0 == " " })),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return nil }
        return .usernamePassword(
            username: String(decoding: decoded[..<colon], as: UTF8.self),
            password: String(decoding: decoded[(colon + 1)...], as: UTF8.self))
    }

    /// The authentication cache's key: the token itself, or a digest of a username and password (the
    /// password is never kept in memory as a key).
    static func cacheKey(_ credential: DeviceCredential) -> String {
        switch credential {
        case .token(let token): "t:" + token
        case .usernamePassword(let u, let p): "p:" + PasswordHasher.hex(Secrets.digest(u + "\u{0}" + p))
        case .certificateFingerprint(let f): "c:" + f
        case .clientCertificate(let f, _): "c:" + f
        }
    }

    /// The token of `Bearer <token>` (scheme case-insensitive), or `nil`.
    static func bearerToken(_ header: String?) -> String? {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        let token = header.dropFirst(7).drop { $0 == " " }
        return token.isEmpty ? nil : String(token)
    }

    /// The media type without parameters, lowercased and trimmed; `nil` when absent or empty.
    static func mediaType(_ header: String?) -> String? {
        guard let header else { return nil }
        let type = header.prefix { $0 != ";" }.lowercased().filter { $0 != " " && $0 != "\t" }
        return type.isEmpty ? nil : type
    }
}
