import Foundation
public import IoTCore
import Synchronization

/// WeChat Official Account template messages: the recipient is a follower's `openid`.
///
/// Gets an `access_token` from `<baseURL>/cgi-bin/token?grant_type=client_credential&appid=…&secret=…`
/// (cached until 5 minutes before it expires), then posts
/// `{"touser", "template_id", "url"?, "data": {<subjectKey>: {"value": subject}, <bodyKey>: {"value": body}}}`
/// to `<baseURL>/cgi-bin/message/template/send?access_token=…`. A token the server calls invalid or
/// expired (40001, 42001) is dropped and the send retried; a wrong app secret (40125, 40013) dead-letters.
public final class WeChatTemplateNotifier: Notifier {
    /// The account and the template.
    public struct Configuration: Sendable {
        /// The API root. Default `https://api.weixin.qq.com`.
        public var baseURL: String
        /// The Official Account's AppID.
        public var appID: String
        /// The AppSecret.
        public var appSecret: String
        /// The template id.
        public var templateID: String
        /// The template data key that receives the subject. Default `first`.
        public var subjectKey: String
        /// The template data key that receives the body. Default `keyword1`.
        public var bodyKey: String
        /// A link opened from the message; optional.
        public var link: String?
        /// Per request. Default 10 000 ms.
        public var timeout: Duration
        /// Creates a configuration.
        public init(
            baseURL: String = "https://api.weixin.qq.com", appID: String, appSecret: String, templateID: String,
            subjectKey: String = "first", bodyKey: String = "keyword1", link: String? = nil,
            timeout: Duration = .seconds(10)
        ) {
            self.baseURL = baseURL
            self.appID = appID
            self.appSecret = appSecret
            self.templateID = templateID
            self.subjectKey = subjectKey
            self.bodyKey = bodyKey
            self.link = link
            self.timeout = timeout
        }
    }

    public let channel: String
    let configuration: Configuration
    private let token = Mutex<(value: String, expiresAt: Int64)?>(nil)

    /// Creates the notifier of `channel`.
    public init(channel: String = "wechat", configuration: Configuration) {
        self.channel = channel
        self.configuration = configuration
    }

    struct Value: Encodable { var value: String }
    struct Payload: Encodable {
        var touser: String
        // WeChat's key.
        // swift-format-ignore: AlwaysUseLowerCamelCase
        var template_id: String
        var url: String?
        var data: [String: Value]
    }
    struct TokenReply: Decodable {
        // WeChat's keys.
        // swift-format-ignore: AlwaysUseLowerCamelCase
        var access_token: String?
        // swift-format-ignore: AlwaysUseLowerCamelCase
        var expires_in: Int64?
    }

    private func accessToken() async throws -> String {
        let now = NotifierHTTP.nowMillis()
        if let t = token.withLock({ $0 }), t.expiresAt > now { return t.value }
        let query =
            "grant_type=client_credential&appid=\(NotifierHTTP.percentEncode(configuration.appID))&secret=\(NotifierHTTP.percentEncode(configuration.appSecret))"
        let r = try await NotifierHTTP.send(
            CurlRequest(
                url: configuration.baseURL + "/cgi-bin/token?" + query, method: "GET",
                timeout: configuration.timeout), channel: channel)
        try NotifierHTTP.checkVendorReply(r, channel: channel, auth: [40125, 40013, 40164, 40001], retry: [-1, 45009])
        guard let reply = try? JSONDecoder().decode(TokenReply.self, from: Data(r.body)), let value = reply.access_token
        else {
            throw IoTError(.unavailable, "\(channel): the token answer has no access_token: \(r.text.prefix(200))")
        }
        // The server's number is clamped (a day at most) before the arithmetic, so no answer can overflow it.
        let life = max(60, min(reply.expires_in ?? 7_200, 86_400) - 300) * 1000
        token.withLock { $0 = (value, now + life) }
        return value
    }

    public func send(_ n: IoTCore.Notification) async throws {
        guard !n.recipient.isEmpty else {
            throw IoTError(.invalidArgument, "\(channel): a WeChat template message needs a recipient openid")
        }
        let access = try await accessToken()
        let payload = Payload(
            touser: n.recipient, template_id: configuration.templateID, url: configuration.link,
            data: [
                configuration.subjectKey: Value(value: n.subject ?? ""), configuration.bodyKey: Value(value: n.body),
            ])
        let r = try await NotifierHTTP.postJSON(
            payload,
            to: configuration.baseURL + "/cgi-bin/message/template/send?access_token="
                + NotifierHTTP.percentEncode(access),
            timeout: configuration.timeout, channel: channel)
        do {
            try NotifierHTTP.checkVendorReply(
                r, channel: channel, auth: [40125, 40013], retry: [-1, 45009, 40001, 42001])
        } catch let e as IoTError where e.nativeCode == 40001 || e.nativeCode == 42001 {
            token.withLock { $0 = nil }  // fetch a new one on the retry
            throw e
        }
    }
}
