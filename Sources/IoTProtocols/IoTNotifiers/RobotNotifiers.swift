import Foundation
public import IoTCore

/// Where a group robot lives and how it signs.
public struct RobotConfiguration: Sendable {
    /// The robot's webhook URL (for DingTalk with `access_token`, for WeCom with `key`).
    public var url: String
    /// The signing secret (Feishu "signature verification", DingTalk "加签"); `nil` sends unsigned.
    public var secret: String?
    /// Per request. Default 10 000 ms.
    public var timeout: Duration
    /// Creates a configuration.
    public init(url: String, secret: String? = nil, timeout: Duration = .seconds(10)) {
        self.url = url
        self.secret = secret
        self.timeout = timeout
    }
}

/// A Feishu (Lark) custom bot: an interactive card with the subject as its title and the Markdown body.
///
/// Signature (when a secret is set): `timestamp` in seconds and
/// `sign = base64(HMAC-SHA256(key: "<timestamp>\n<secret>", message: ""))` in the JSON body, as
/// Feishu's documentation specifies. A `code` other than 0 in the reply is an error (19021, sign
/// mismatch, dead-letters as unauthorized; 9499 and 11232, rate limits, are retried).
public struct FeishuNotifier: Notifier {
    public let channel: String
    let configuration: RobotConfiguration

    /// Creates the notifier of `channel`.
    public init(channel: String = "feishu", configuration: RobotConfiguration) {
        self.channel = channel
        self.configuration = configuration
    }

    struct Text: Encodable {
        var tag = "plain_text"
        var content: String
    }
    struct Header: Encodable { var title: Text }
    struct Element: Encodable {
        var tag = "markdown"
        var content: String
    }
    struct Card: Encodable {
        var header: Header?
        var elements: [Element]
    }
    struct Payload: Encodable {
        var timestamp: String?
        var sign: String?
        // Feishu's key.
        // swift-format-ignore: AlwaysUseLowerCamelCase
        var msg_type = "interactive"
        var card: Card
    }

    /// The Feishu signature of `timestamp` (seconds).
    static func sign(timestamp: Int64, secret: String) -> String {
        NotifierHTTP.base64(NotifierHTTP.hmacSHA256(key: Array("\(timestamp)\n\(secret)".utf8), message: []))
    }

    public func send(_ n: IoTCore.Notification) async throws {
        var payload = Payload(
            card: Card(header: n.subject.map { Header(title: Text(content: $0)) }, elements: [Element(content: n.body)])
        )
        if let secret = configuration.secret {
            let ts = NotifierHTTP.nowMillis() / 1000
            payload.timestamp = String(ts)
            payload.sign = Self.sign(timestamp: ts, secret: secret)
        }
        let r = try await NotifierHTTP.postJSON(
            payload, to: configuration.url, timeout: configuration.timeout, channel: channel)
        try NotifierHTTP.checkVendorReply(r, channel: channel, auth: [19021, 19022], retry: [9499, 11232])
    }
}

/// A DingTalk group robot: a Markdown message.
///
/// Signature (when a secret is set): `timestamp` in milliseconds and
/// `sign = urlencode(base64(HMAC-SHA256(key: secret, message: "<timestamp>\n<secret>")))` as query
/// parameters, as DingTalk's documentation specifies. `errcode` 310000 (signature, keyword or IP
/// refused) dead-letters as unauthorized; 130101 (over 20 a minute) is retried.
public struct DingTalkNotifier: Notifier {
    public let channel: String
    let configuration: RobotConfiguration

    /// Creates the notifier of `channel`.
    public init(channel: String = "dingtalk", configuration: RobotConfiguration) {
        self.channel = channel
        self.configuration = configuration
    }

    struct Markdown: Encodable {
        var title: String
        var text: String
    }
    struct Payload: Encodable {
        var msgtype = "markdown"
        var markdown: Markdown
    }

    /// The DingTalk `sign` query value of `timestamp` (ms), already URL-encoded.
    static func sign(timestamp: Int64, secret: String) -> String {
        let mac = NotifierHTTP.hmacSHA256(key: Array(secret.utf8), message: Array("\(timestamp)\n\(secret)".utf8))
        return NotifierHTTP.percentEncode(NotifierHTTP.base64(mac))
    }

    public func send(_ n: IoTCore.Notification) async throws {
        var url = configuration.url
        if let secret = configuration.secret {
            let ts = NotifierHTTP.nowMillis()
            url = NotifierHTTP.appendQuery(url, "timestamp=\(ts)&sign=\(Self.sign(timestamp: ts, secret: secret))")
        }
        let title = n.subject ?? String(n.body.prefix(while: { $0 != "\n" }).prefix(64))
        let payload = Payload(markdown: Markdown(title: title, text: NotifierHTTP.truncate(n.body, maxBytes: 18_000)))
        let r = try await NotifierHTTP.postJSON(
            payload, to: url, timeout: configuration.timeout, channel: channel)
        try NotifierHTTP.checkVendorReply(r, channel: channel, auth: [310000, 300001, 400101], retry: [130101, -1])
    }
}

/// A WeCom (WeChat Work) group robot: a Markdown message (at most 4 096 bytes; longer bodies are cut).
/// `errcode` 93000 (invalid webhook key) dead-letters as unauthorized; 45009 (rate limit) is retried.
public struct WeComNotifier: Notifier {
    public let channel: String
    let configuration: RobotConfiguration

    /// Creates the notifier of `channel`.
    public init(channel: String = "wecom", configuration: RobotConfiguration) {
        self.channel = channel
        self.configuration = configuration
    }

    struct Markdown: Encodable { var content: String }
    struct Payload: Encodable {
        var msgtype = "markdown"
        var markdown: Markdown
    }

    public func send(_ n: IoTCore.Notification) async throws {
        let payload = Payload(markdown: Markdown(content: NotifierHTTP.truncate(n.body, maxBytes: 4_096)))
        let r = try await NotifierHTTP.postJSON(
            payload, to: configuration.url, timeout: configuration.timeout, channel: channel)
        try NotifierHTTP.checkVendorReply(r, channel: channel, auth: [93000, 40014, 40001], retry: [45009, -1])
    }
}

/// A Slack incoming webhook: `{"text": …, "mrkdwn": true}` (Markdown `**bold**` becomes Slack's
/// `*bold*`). Slack answers `ok`; 403 `invalid_token` and 404 `no_service` dead-letter.
public struct SlackNotifier: Notifier {
    public let channel: String
    let configuration: RobotConfiguration

    /// Creates the notifier of `channel`.
    public init(channel: String = "slack", configuration: RobotConfiguration) {
        self.channel = channel
        self.configuration = configuration
    }

    struct Payload: Encodable {
        var text: String
        var mrkdwn = true
    }

    public func send(_ n: IoTCore.Notification) async throws {
        let text = n.body.replacingOccurrences(of: "**", with: "*")
        _ = try await NotifierHTTP.postJSON(
            Payload(text: text), to: configuration.url, timeout: configuration.timeout, channel: channel)
    }
}
