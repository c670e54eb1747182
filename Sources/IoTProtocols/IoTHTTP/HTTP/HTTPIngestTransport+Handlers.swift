import HTTPTypes
import Hummingbird
import IoTAuth
import IoTCore
import Logging

extension HTTPIngestTransport {
    /// `POST /api/v1/devices/{uid}/telemetry` with a bearer token.
    func deviceTelemetry(_ request: Request, context: DeviceRequestContext) async -> Response {
        let uid = context.parameters.get("uid") ?? ""
        if let tooLarge = await refuseDeclaredSize(request) { return tooLarge }
        var presented = Self.credential(request.headers[.authorization])
        if presented == nil, configuration.tls.map({ $0.clientCertificates != .none }) == true {
            presented = await PeerCertificate.of(context.channel)?.credential
        }
        guard let credential = presented else {
            return await refuse(
                IoTError(
                    .unauthorized,
                    "no device credential; send \"Authorization: Bearer <device access token>\" or \"Authorization: Basic <base64 of username:password>\""
                ))
        }
        let contentType = Self.mediaType(request.headers[.contentType])
        return await submit(request, contentType: contentType, context: context) { message in
            deviceSubmission(message, uid: uid, credential: credential, address: context.peerAddress)
        } success: {
            IngestResponses.receiptReply($0)
        }
    }

    /// `POST /api/v1/{token}/telemetry`: ThingsBoard's device API.
    func thingsBoardTelemetry(_ request: Request, context: DeviceRequestContext) async -> Response {
        if let tooLarge = await refuseDeclaredSize(request) { return tooLarge }
        let token = context.parameters.get("token") ?? ""
        let contentType = Self.mediaType(request.headers[.contentType])
        return await submit(request, contentType: contentType, context: context) { message in
            thingsBoardSubmission(message, token: token, address: context.peerAddress)
        } success: { _ in
            IngestResponses.emptyReply
        }
    }

    // MARK: Submissions

    /// What a device telemetry request is to the gateway: `message` (its content type set) from the holder
    /// of `credential` at `address`, for the device `uid`.
    func deviceSubmission(_ message: InboundMessage, uid: String, credential: DeviceCredential, address: String)
        -> IngestSubmission
    {
        let sender = IngestSubmission.Sender.credential(credential, address: address)
        // A type JSON and SenML do not read is still fine when the product names its parser (a script
        // reading CSV, say): the gateway decides.
        guard let parser = parser(for: message.contentType) else {
            let supported = (["application/json"] + configuration.senmlContentTypes.sorted()).joined(
                separator: " or ")
            return .foreignFormat(
                message,
                refusal: IoTError(
                    .malformedPayload,
                    "content type \"\(message.contentType ?? "")\" is not supported; send \(supported)"),
                from: sender, claiming: uid)
        }
        return .message(message, parser: parser, from: sender, claiming: uid)
    }

    /// What a ThingsBoard telemetry request is to the gateway: `message` from the holder of `token` at
    /// `address`, read as SenML for the configured SenML types and as ThingsBoard's JSON otherwise.
    func thingsBoardSubmission(_ message: InboundMessage, token: String, address: String) -> IngestSubmission {
        let parser: any Parser =
            message.contentType.map { configuration.senmlContentTypes.contains($0) } == true
            ? senmlParser : thingsBoardParser
        return .message(message, parser: parser, from: .credential(.token(token), address: address))
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

    /// Reads the body, submits what `submission` makes of it, and answers.
    private func submit(
        _ request: Request, contentType: String?, context: DeviceRequestContext,
        _ submission: (InboundMessage) -> IngestSubmission, success: (Receipt) -> IngestReply
    ) async -> Response {
        let payload: [UInt8]
        do {
            guard let body = try await collectBody(request) else {
                return await refuse(tooLargeError())
            }
            payload = body
        } catch {
            logger.debug("reading a request body failed", metadata: ["error": "\(error)"])
            return IngestResponses.error(IoTError(.malformedPayload, "the request body could not be read: \(error)"))
        }
        let message = InboundMessage(
            transport: name, topic: request.uri.path, contentType: contentType, payload: payload)
        return reply(to: await gateway.submit(submission(message)), path: request.uri.path, success: success)
            .response
    }

    /// The reply to a submission's outcome: `success` of its receipt, or its error (logged when it is the
    /// server's own, a `500`). `path` is the request's, for the log.
    func reply(to outcome: IngestOutcome, path: String, success: (Receipt) -> IngestReply) -> IngestReply {
        switch outcome {
        case .stored(let receipt, _):
            return success(receipt)
        case .unsupportedFormat(let error):
            return IngestResponses.errorReply(error, status: .unsupportedMediaType)
        case .refused(let error):
            if IngestResponses.status(for: error) == .internalServerError {
                logger.error("ingest failed", metadata: ["error": "\(error)", "path": "\(path)"])
            }
            return IngestResponses.errorReply(error)
        case .deferred:
            return IngestResponses.errorReply(IoTError(.unavailable, "the request was not handled; retry"))
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

    private func refuseDeclaredSize(_ request: Request) async -> Response? {
        guard let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > configuration.maxBodyBytes
        else { return nil }
        return await refuse(tooLargeError())
    }

    private func tooLargeError() -> IoTError {
        IoTError(
            .payloadTooLarge,
            "the request body is over the limit of \(configuration.maxBodyBytes) bytes; send fewer records per request")
    }

    /// Counts a request refused before it held a message (through the gateway) and answers it.
    func refuse(_ error: IoTError) async -> Response {
        _ = await gateway.submit(.refused(error, transport: name))
        return IngestResponses.error(error)
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
