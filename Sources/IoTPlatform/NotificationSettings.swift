import IoTCore
import IoTProtocols
public import IoTRules

/// `notifications:` of the configuration: channels, delivery settings and recipient groups.
///
/// Read from the configuration file (`Examples/iotd.example.yaml` documents each key). A channel of a type
/// the platform does not build is added in code instead: ``IoTPlatform/Layers/notifiers``.
public struct NotificationSettings: Codable, Sendable {
    /// One channel: a name (what policies name) and a type with its settings.
    struct Channel: Codable, Sendable {
        var name: String
        var type: String  // inbox, email, webhook, feishu, dingtalk, wecom, wechat, slack, sms, voice
        var url: String?
        var secret: String?
        var signature: WebhookNotifier.Signature?  // webhook: standard (default), github, iot
        var headers: [String: String]?
        var method: String?
        var body: String?
        var contentType: String?
        var timeoutMillis: Int?  // 1 to 600,000
        // email
        var from: String?
        var fromName: String?
        var username: String?
        var password: String?
        var auth: String?
        var requireTLS: Bool?
        var caFile: String?
        var insecureSkipVerify: Bool?
        // wechat
        var baseURL: String?
        var appID: String?
        var appSecret: String?
        var templateID: String?
        var subjectKey: String?
        var bodyKey: String?
        // delivery
        var messagesPerMinute: Int?
        var burst: Int?
        var digestThreshold: Int?
        var digestWindowMillis: Int64?
        var maxAttempts: Int?
    }

    var channels: [Channel]?
    var maxAttempts: Int?
    var initialBackoffMillis: Int64?
    var maxBackoffMillis: Int64?
    var pollIntervalMillis: Int64?
    var digestThreshold: Int?
    var digestWindowMillis: Int64?
    var groups: [String: [StaticRecipientResolver.Member]]?

    /// No channel but the inbox, the dispatcher's defaults.
    public init() {}

    static let types: Set<String> = [
        "inbox", "email", "webhook", "feishu", "dingtalk", "wecom", "wechat", "slack", "sms", "voice",
    ]

    /// The configured channels plus `inbox` (always there, so alarms reach someone out of the box).
    var allChannels: [Channel] {
        var list = channels ?? []
        if !list.contains(where: { $0.name == "inbox" }) { list.insert(Channel(name: "inbox", type: "inbox"), at: 0) }
        return list
    }

    var dispatcherConfiguration: NotificationDispatcher.Configuration {
        var c = NotificationDispatcher.Configuration()
        if let v = maxAttempts { c.maxAttempts = v }
        if let v = initialBackoffMillis { c.initialBackoff = .milliseconds(v) }
        if let v = maxBackoffMillis { c.maxBackoff = .milliseconds(v) }
        if let v = pollIntervalMillis { c.pollInterval = .milliseconds(v) }
        if let v = digestThreshold { c.defaultPolicy.digestThreshold = v }
        if let v = digestWindowMillis { c.defaultPolicy.digestWindow = .milliseconds(v) }
        for ch in allChannels {
            var p = c.defaultPolicy
            // Robots accept about 20 messages a minute: that is their default limit.
            p.messagesPerMinute = ch.messagesPerMinute ?? (["dingtalk", "wecom"].contains(ch.type) ? 20 : nil)
            p.burst = ch.burst
            if let v = ch.digestThreshold { p.digestThreshold = v }
            if let v = ch.digestWindowMillis { p.digestWindow = .milliseconds(v) }
            p.maxAttempts = ch.maxAttempts
            c.channels[ch.name] = p
        }
        return c
    }

    var formats: [String: TemplateFormat] {
        Dictionary(
            allChannels.map { ch in
                let f: TemplateFormat =
                    switch ch.type {
                    case "feishu", "dingtalk", "wecom", "slack": .markdown
                    case "sms", "voice": .plain
                    default: .subjectAndBody
                    }
                return (ch.name, f)
            }, uniquingKeysWith: { a, _ in a })
    }

    func notifiers(inbox: any Inbox) throws -> [any Notifier] {
        try allChannels.map { ch in
            func need(_ v: String?, _ key: String) throws -> String {
                guard let v, !v.isEmpty else {
                    throw ConfigurationError("notifications.channels[\(ch.name)].\(key): a \(ch.type) channel needs it")
                }
                return v
            }
            let timeout = Duration.milliseconds(ch.timeoutMillis ?? 10_000)
            let robot = { () throws -> RobotConfiguration in
                RobotConfiguration(url: try need(ch.url, "url"), secret: ch.secret, timeout: timeout)
            }
            switch ch.type {
            case "inbox": return InboxNotifier(channel: ch.name, inbox: inbox)
            case "email":
                return EmailNotifier(
                    channel: ch.name,
                    configuration: .init(
                        url: try need(ch.url, "url"), from: try need(ch.from, "from"), fromName: ch.fromName,
                        username: ch.username,
                        password: ch.password, authMechanism: ch.auth, requireTLS: ch.requireTLS,
                        caFile: ch.caFile,
                        insecureSkipVerify: ch.insecureSkipVerify ?? false,
                        timeout: .milliseconds(ch.timeoutMillis ?? 30_000)))
            case "webhook":
                return WebhookNotifier(
                    channel: ch.name,
                    configuration: .init(
                        url: try need(ch.url, "url"), secret: ch.secret, headers: ch.headers ?? [:],
                        timeout: timeout, signature: ch.signature ?? .standard))
            case "feishu": return FeishuNotifier(channel: ch.name, configuration: try robot())
            case "dingtalk": return DingTalkNotifier(channel: ch.name, configuration: try robot())
            case "wecom": return WeComNotifier(channel: ch.name, configuration: try robot())
            case "slack": return SlackNotifier(channel: ch.name, configuration: try robot())
            case "wechat":
                return WeChatTemplateNotifier(
                    channel: ch.name,
                    configuration: .init(
                        baseURL: ch.baseURL ?? "https://api.weixin.qq.com", appID: try need(ch.appID, "appID"),
                        appSecret: try need(ch.appSecret, "appSecret"),
                        templateID: try need(ch.templateID, "templateID"),
                        subjectKey: ch.subjectKey ?? "first", bodyKey: ch.bodyKey ?? "keyword1", timeout: timeout)
                )
            case "sms", "voice":
                return HTTPGatewayNotifier(
                    channel: ch.name,
                    configuration: .init(
                        url: try need(ch.url, "url"), method: ch.method ?? "POST", headers: ch.headers ?? [:],
                        body: ch.body,
                        contentType: ch.contentType ?? "application/json", timeout: timeout))
            default:
                throw ConfigurationError(
                    "notifications.channels[\(ch.name)].type: '\(ch.type)' is not one of \(Self.types.sorted().joined(separator: ", "))"
                )
            }
        }
    }

    func validate() throws {
        var names: Set<String> = []
        for ch in channels ?? [] {
            guard Self.types.contains(ch.type) else {
                throw ConfigurationError(
                    "notifications.channels[\(ch.name)].type: '\(ch.type)' is not one of \(Self.types.sorted().joined(separator: ", "))"
                )
            }
            guard names.insert(ch.name).inserted else {
                throw ConfigurationError("notifications.channels: the name '\(ch.name)' is used twice")
            }
            if let v = ch.timeoutMillis, !(1...600_000).contains(v) {
                throw ConfigurationError(
                    "notifications.channels[\(ch.name)].timeoutMillis: \(v) is out of range; use 1 to 600000 ms")
            }
            if ch.type == "webhook" {
                do throws(IoTError) {
                    try WebhookNotifier.Configuration(
                        url: ch.url ?? "", secret: ch.secret, signature: ch.signature ?? .standard
                    ).validate()
                } catch {
                    throw ConfigurationError("notifications.channels[\(ch.name)].secret: \(error.message)")
                }
            }
        }
        do throws(IoTError) { try dispatcherConfiguration.validate() } catch {
            throw ConfigurationError("notifications.\(error.message)")
        }
    }
}

/// `notifications:` of one tenant in the configuration: its templates and routing policies.
public struct TenantNotificationSeed: Codable, Sendable {
    /// Templates, created or replaced.
    public var templates: [NotificationTemplate]?
    /// Routing policies, created or replaced.
    public var policies: [RoutingPolicy]?
    /// Neither.
    public init(templates: [NotificationTemplate]? = nil, policies: [RoutingPolicy]? = nil) {
        self.templates = templates
        self.policies = policies
    }
}
