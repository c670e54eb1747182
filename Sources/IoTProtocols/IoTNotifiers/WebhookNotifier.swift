import Foundation
public import IoTCore

/// A generic webhook: one JSON POST per notification, signed with HMAC-SHA256.
///
/// Body: `{"id", "channel", "recipient", "tenant", "subject", "body", "messageIDs", "count", "timestamp"}`
/// (`count` > 1 for a storm digest). Headers: `X-IoT-Timestamp: <UTC ms>` and, when a secret is set,
/// `X-IoT-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`. A receiver recomputes
/// the HMAC over the timestamp header, a dot and the raw body, compares in constant time and rejects
/// old timestamps (replays).
///
/// ```swift
/// let hook = WebhookNotifier(channel: "ops-webhook", configuration: .init(url: "https://ops.example.com/iot", secret: key))
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
        /// Creates a configuration.
        public init(
            url: String, secret: String? = nil, headers: [String: String] = [:], timeout: Duration = .seconds(10)
        ) {
            self.url = url
            self.secret = secret
            self.headers = headers
            self.timeout = timeout
        }
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
        var headers: [(String, String)] = [("Content-Type", "application/json"), ("X-IoT-Timestamp", String(ts))]
        if let secret = configuration.secret {
            let mac = NotifierHTTP.hmacSHA256(key: Array(secret.utf8), message: Array("\(ts).".utf8) + body)
            headers.append(("X-IoT-Signature", "sha256=" + NotifierHTTP.hex(mac)))
        }
        headers += configuration.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        _ = try await NotifierHTTP.send(
            CurlRequest(
                url: configuration.url, headers: headers, body: body, timeout: configuration.timeout),
            channel: channel)
    }
}
