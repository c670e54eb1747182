import Foundation
public import IoTCore

/// A generic webhook: one JSON POST per notification, signed with HMAC-SHA256 in a scheme receivers already
/// verify (``Signature``).
///
/// Body: `{"id", "channel", "recipient", "tenant", "subject", "body", "messageIDs", "count", "timestamp"}`
/// (`count` > 1 for a storm digest). With a secret, the request is signed as ``Configuration/signature`` says:
///
/// - ``Signature/standard`` (the default), [Standard Webhooks](https://www.standardwebhooks.com):
///   `webhook-id` (the outbox message id, the same on every retry), `webhook-timestamp` (UTC seconds) and
///   `webhook-signature: v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the key is the
///   base64 after `whsec_` in the secret (the form Standard Webhooks libraries take), or the secret's bytes
///   when it has no such prefix. Any Standard Webhooks library verifies it (`Webhook(secret).verify(body,
///   headers)`).
/// - ``Signature/github``: GitHub's `X-Hub-Signature-256: sha256=<hex of HMAC-SHA256(secret, body)>`, with
///   `X-GitHub-Delivery: <id>`.
/// - ``Signature/iot``: this platform's earlier scheme, `X-IoT-Timestamp: <UTC ms>` and
///   `X-IoT-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
///
/// ```swift
/// let hook = WebhookNotifier(
///     channel: "ops-webhook", configuration: .init(url: "https://ops.example.com/iot", secret: "whsec_…"))
/// ```
public struct WebhookNotifier: Notifier {
    /// Where and how.
    public struct Configuration: Sendable {
        /// The endpoint.
        public var url: String
        /// The HMAC key; `nil` sends unsigned.
        public var secret: String?
        /// Extra headers (an `Authorization` for the receiver, say).
        public var headers: [String: String]
        /// Per request. Default 10 000 ms.
        public var timeout: Duration
        /// How the request is signed when ``secret`` is set. Default ``Signature/standard``.
        public var signature: Signature
        /// Creates a configuration.
        public init(
            url: String, secret: String? = nil, headers: [String: String] = [:], timeout: Duration = .seconds(10),
            signature: Signature = .standard
        ) {
            self.url = url
            self.secret = secret
            self.headers = headers
            self.timeout = timeout
            self.signature = signature
        }

        /// Checks the secret for its scheme: a `whsec_` secret must carry base64 after the prefix.
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` saying what to change.
        public func validate() throws(IoTError) {
            guard let secret else { return }
            guard !secret.isEmpty else { throw IoTError(.invalidArgument, "the webhook secret is empty; leave it out") }
            if signature == .standard, secret.hasPrefix(WebhookNotifier.standardSecretPrefix),
                WebhookNotifier.standardKey(secret) == nil
            {
                throw IoTError(
                    .invalidArgument,
                    "the webhook secret starts with whsec_ but what follows is not base64; use the secret the receiver shows (whsec_ and base64)"
                )
            }
        }
    }

    /// A signature scheme a webhook receiver verifies.
    public enum Signature: String, Sendable, Codable, CaseIterable {
        /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…`).
        case standard
        /// GitHub's `X-Hub-Signature-256: sha256=…`.
        case github
        /// This platform's earlier `X-IoT-Timestamp` and `X-IoT-Signature`.
        case iot
    }

    static let standardSecretPrefix = "whsec_"

    /// The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`, or the secret's bytes without
    /// the prefix; `nil` when the base64 is malformed.
    static func standardKey(_ secret: String) -> [UInt8]? {
        guard secret.hasPrefix(standardSecretPrefix) else { return Array(secret.utf8) }
        var text = String(secret.dropFirst(standardSecretPrefix.count))
        text += String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)  // as the reference libraries pad
        guard let key = Data(base64Encoded: text), !key.isEmpty else { return nil }
        return Array(key)
    }

    struct Payload: Encodable {
        var id: String
        var channel: String
        var recipient: String
        var tenant: String?
        var subject: String?
        var body: String
        var messageIDs: [String]
        var count: Int
        var timestamp: Int64
    }

    public let channel: String
    let configuration: Configuration

    /// Creates the notifier of `channel`.
    public init(channel: String = "webhook", configuration: Configuration) {
        self.channel = channel
        self.configuration = configuration
    }

    public func send(_ n: IoTCore.Notification) async throws {
        let ts = NotifierHTTP.nowMillis()
        let body = NotifierHTTP.json(
            Payload(
                id: n.id, channel: n.channel, recipient: n.recipient, tenant: n.tenant?.rawValue, subject: n.subject,
                body: n.body, messageIDs: n.messageIDs, count: n.messageIDs.count, timestamp: ts))
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        headers += try Self.signatureHeaders(
            configuration.signature, secret: configuration.secret, id: n.id, timestampMillis: ts, body: body)
        headers += configuration.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        _ = try await NotifierHTTP.send(
            CurlRequest(
                url: configuration.url, headers: headers, body: body, timeout: configuration.timeout),
            channel: channel)
    }

    /// The headers that sign `body` in `scheme` (only the identifying ones without a secret).
    static func signatureHeaders(
        _ scheme: Signature, secret: String?, id: String, timestampMillis ts: Int64, body: [UInt8]
    ) throws(IoTError) -> [(String, String)] {
        switch scheme {
        case .standard:
            let seconds = String(ts / 1000)
            var headers = [("webhook-id", id), ("webhook-timestamp", seconds)]
            if let secret {
                guard let key = standardKey(secret) else {
                    throw IoTError(.unauthorized, "the webhook secret starts with whsec_ but is not base64")
                }
                let mac = NotifierHTTP.hmacSHA256(key: key, message: Array("\(id).\(seconds).".utf8) + body)
                headers.append(("webhook-signature", "v1," + NotifierHTTP.base64(mac)))
            }
            return headers
        case .github:
            var headers = [("X-GitHub-Delivery", id)]
            if let secret {
                let mac = NotifierHTTP.hmacSHA256(key: Array(secret.utf8), message: body)
                headers.append(("X-Hub-Signature-256", "sha256=" + NotifierHTTP.hex(mac)))
            }
            return headers
        case .iot:
            var headers = [("X-IoT-Timestamp", String(ts))]
            if let secret {
                let mac = NotifierHTTP.hmacSHA256(key: Array(secret.utf8), message: Array("\(ts).".utf8) + body)
                headers.append(("X-IoT-Signature", "sha256=" + NotifierHTTP.hex(mac)))
            }
            return headers
        }
    }
}
