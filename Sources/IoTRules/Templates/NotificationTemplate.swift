public import IoTCore

/// What a template is for; each kind has its own variables, which is what ``NotificationTemplate``
/// is validated against when it is saved.
public struct TemplateKind: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// An alarm was raised.
    public static let alarmRaised = TemplateKind(rawValue: "alarm_raised")
    /// An alarm cleared.
    public static let alarmCleared = TemplateKind(rawValue: "alarm_cleared")
    /// An alarm was acknowledged.
    public static let alarmAcknowledged = TemplateKind(rawValue: "alarm_acknowledged")
    /// A device went offline (an offline rule's alarm).
    public static let deviceOffline = TemplateKind(rawValue: "device_offline")
    /// A system maintenance notice sent by an operator.
    public static let maintenanceNotice = TemplateKind(rawValue: "maintenance_notice")
    /// A user account was registered (with the activation link of a user made without a password).
    public static let accountRegistered = TemplateKind(rawValue: "account_registered")
    /// A user asked to reset their password: the one-time link.
    public static let passwordReset = TemplateKind(rawValue: "password_reset")

    /// Every kind this version knows.
    public static let all: [TemplateKind] = [
        .alarmRaised, .alarmCleared, .alarmAcknowledged, .deviceOffline, .maintenanceNotice, .accountRegistered,
        .passwordReset,
    ]

    /// Variables of every alarm kind (see ``AlarmVariables``).
    public static let alarmVariables: Set<String> = [
        "tenant", "alarm_id", "event", "rule_id", "alert_type", "severity", "device_uid", "device_name", "device.uid",
        "device.name", "device.product", "product", "timestamp", "timestamp_ms", "start_time", "current_value",
        "occurrences", "details", "active", "acknowledged",
    ]

    /// The variables a template of this kind may use; `nil` for a kind this version does not know.
    public var variables: Set<String>? {
        switch self {
        case .alarmRaised, .alarmCleared, .alarmAcknowledged, .deviceOffline: Self.alarmVariables
        case .maintenanceNotice: ["tenant", "title", "message", "start_time", "end_time", "timestamp"]
        case .accountRegistered:
            [
                "tenant", "user_name", "user.name", "user.email", "login_url", "activation_url", "expires_at",
                "timestamp",
            ]
        case .passwordReset: ["tenant", "user_name", "user.name", "user.email", "reset_url", "expires_at", "timestamp"]
        default: nil
        }
    }
}

/// How a channel shows text.
public enum TemplateFormat: String, Sendable, Hashable, Codable {
    /// Plain text, no subject: SMS and voice.
    case plain
    /// A subject and a plain-text body: email, inbox, webhooks, WeChat template messages.
    case subjectAndBody = "subject_and_body"
    /// Markdown (with the subject as a heading when the template has no Markdown of its own): Feishu,
    /// DingTalk, WeCom, Slack.
    case markdown
}

/// A notification template: a subject, a plain-text body and an optional Markdown body, all `${}`
/// templates of one ``TemplateKind``.
///
/// It is validated when it is made (``init(id:kind:subject:body:markdown:)`` throws): an unknown
/// variable is an error at save time, not a blank at 3 a.m.
///
/// ```swift
/// let t = try NotificationTemplate(id: "hot", kind: .alarmRaised, subject: "${device_name}: ${alert_type}",
///     body: "Device ${device_name} raised a ${alert_type} alarm at ${timestamp}; current value ${current_value}.")
/// let (subject, body) = t.render(for: .markdown, values: variables)
/// ```
public struct NotificationTemplate: Sendable, Hashable, Codable {
    /// Unique id within a tenant.
    public var id: String
    /// What it is for; decides the variables.
    public var kind: TemplateKind
    /// The subject (email, inbox, webhook); optional.
    public var subject: String?
    /// The plain-text body.
    public var body: String
    /// A Markdown body for Feishu, DingTalk, WeCom and Slack; when absent they get the subject in bold
    /// and the plain body.
    public var markdown: String?

    /// Creates and validates a template.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` for an unknown kind, a malformed template or an unknown
    ///   variable (the message names it).
    public init(id: String, kind: TemplateKind, subject: String? = nil, body: String, markdown: String? = nil)
        throws(IoTError)
    {
        self.id = id
        self.kind = kind
        self.subject = subject
        self.body = body
        self.markdown = markdown
        try validate()
    }

    private enum CodingKeys: String, CodingKey { case id, kind, subject, body, markdown }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            id: try c.decode(String.self, forKey: .id), kind: try c.decode(TemplateKind.self, forKey: .kind),
            subject: try c.decodeIfPresent(String.self, forKey: .subject),
            body: try c.decode(String.self, forKey: .body),
            markdown: try c.decodeIfPresent(String.self, forKey: .markdown))
    }

    /// Checks the kind, the syntax and every variable.
    public func validate() throws(IoTError) {
        guard let known = kind.variables else {
            throw IoTError(
                .invalidArgument,
                "template \"\(id)\" has an unknown kind \"\(kind)\"; use one of \(TemplateKind.all.map(\.rawValue).joined(separator: ", "))"
            )
        }
        for (field, text) in [("subject", subject), ("body", body), ("markdown", markdown)] {
            guard let text else { continue }
            do {
                try Template(text).validate(known: known)
            } catch {
                throw IoTError(.invalidArgument, "template \"\(id)\", \(field): \(error.message)")
            }
        }
    }

    /// The subject and body for a channel of `format`, with `values` filled in.
    public func render(for format: TemplateFormat, values: [String: String]) -> (subject: String?, body: String) {
        func r(_ s: String) -> String { (try? Template(s).render(values)) ?? s }
        let subject = self.subject.map(r)
        switch format {
        case .plain:
            return (nil, r(body))
        case .subjectAndBody:
            return (subject, r(body))
        case .markdown:
            if let markdown { return (subject, r(markdown)) }
            let plain = r(body)
            return (subject, subject.map { "**\($0)**\n\n\(plain)" } ?? plain)
        }
    }
}

extension NotificationTemplate {
    /// The built-in templates every tenant has (ids `alarm_raised`, `alarm_cleared`,
    /// `alarm_acknowledged`, `device_offline`, `maintenance_notice`, `account_registered`); a tenant
    /// template with the same id replaces one.
    public static let builtIns: [NotificationTemplate] = [
        try! NotificationTemplate(
            id: "alarm_raised", kind: .alarmRaised, subject: "[${severity}] ${device_name}: ${alert_type} alarm",
            body:
                "Device ${device_name}: ${alert_type} alarm raised at ${timestamp}; current value ${current_value}.",
            markdown:
                "### ${device_name}: ${alert_type} alarm\n- severity: **${severity}**\n- time: ${timestamp}\n- current value: ${current_value}"
        ),
        try! NotificationTemplate(
            id: "alarm_cleared", kind: .alarmCleared, subject: "[cleared] ${device_name}: ${alert_type} alarm",
            body:
                "The ${alert_type} alarm of device ${device_name} cleared at ${timestamp}; current value ${current_value}."
        ),
        try! NotificationTemplate(
            id: "alarm_acknowledged", kind: .alarmAcknowledged, subject: "[acknowledged] ${device_name}: ${alert_type}",
            body: "The ${alert_type} alarm of device ${device_name} was acknowledged at ${timestamp}."),
        try! NotificationTemplate(
            id: "device_offline", kind: .deviceOffline, subject: "${device_name} is offline",
            body: "Device ${device_name} has sent nothing since ${start_time} (checked at ${timestamp})."),
        try! NotificationTemplate(
            id: "maintenance_notice", kind: .maintenanceNotice, subject: "Maintenance: ${title}",
            body: "${message} The platform is under maintenance from ${start_time} to ${end_time}."),
        try! NotificationTemplate(
            id: "account_registered", kind: .accountRegistered, subject: "Welcome, ${user_name}",
            body: "Your account ${user.email} was registered at ${timestamp}. Sign in at ${login_url}."),
        try! NotificationTemplate(
            id: "password_reset", kind: .passwordReset, subject: "Reset your password, ${user_name}",
            body:
                "Someone asked to reset the password of ${user.email} at ${timestamp}. To set a new one, open ${reset_url} before ${expires_at}; otherwise ignore this message."
        ),
    ]
}
