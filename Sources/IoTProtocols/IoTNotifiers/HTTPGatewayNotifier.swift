import Foundation
public import IoTCore

/// SMS or voice calls through a configurable HTTP gateway (a provider's API or an in-house relay).
///
/// The URL, headers and body are templates with `${to}`, `${text}` and `${subject}`: values are
/// percent-encoded in the URL, JSON-escaped (without quotes) in a JSON body, percent-encoded in a form
/// body, and written as they are otherwise. Any 2xx is success.
///
/// ```swift
/// let sms = HTTPGatewayNotifier(channel: "sms", configuration: .init(
///     url: "https://sms.example.com/send", headers: ["Authorization": "Bearer …"],
///     body: #"{"phone": "${to}", "message": "${text}"}"#))
/// ```
public struct HTTPGatewayNotifier: Notifier {
    /// The gateway request.
    public struct Configuration: Sendable {
        /// The URL template.
        public var url: String
        /// `POST` (default), `PUT` or `GET`.
        public var method: String
        /// Header templates.
        public var headers: [String: String]
        /// The body template; `nil` sends none.
        public var body: String?
        /// The body's content type. Default `application/json`.
        public var contentType: String
        /// Texts longer than this many UTF-8 bytes are cut (SMS and text-to-speech limits). Default 1 000.
        public var maxTextBytes: Int
        /// Per request. Default 10 000 ms.
        public var timeout: Duration
        /// Creates a configuration.
        public init(
            url: String, method: String = "POST", headers: [String: String] = [:], body: String? = nil,
            contentType: String = "application/json", maxTextBytes: Int = 1_000, timeout: Duration = .seconds(10)
        ) {
            self.url = url
            self.method = method
            self.headers = headers
            self.body = body
            self.contentType = contentType
            self.maxTextBytes = maxTextBytes
            self.timeout = timeout
        }
    }

    public let channel: String
    let configuration: Configuration

    /// Creates the notifier of `channel` (`sms`, `voice`, …).
    public init(channel: String, configuration: Configuration) {
        self.channel = channel
        self.configuration = configuration
    }

    /// Fills `${to}`, `${text}` and `${subject}` in `template`, escaping each value with `escape`.
    static func fill(_ template: String, _ values: [String: String], escape: (String) -> String) -> String {
        var out = template
        for (k, v) in values { out = out.replacingOccurrences(of: "${\(k)}", with: escape(v)) }
        return out
    }

    public func send(_ n: IoTCore.Notification) async throws {
        guard !n.recipient.isEmpty else {
            throw IoTError(.invalidArgument, "\(channel): a gateway message needs a recipient (a phone number)")
        }
        let values = [
            "to": n.recipient, "text": NotifierHTTP.truncate(n.body, maxBytes: configuration.maxTextBytes),
            "subject": n.subject ?? "",
        ]
        let url = Self.fill(configuration.url, values, escape: NotifierHTTP.percentEncode)
        var headers: [(String, String)] = []
        for (k, v) in configuration.headers.sorted(by: { $0.key < $1.key }) {
            headers.append((k, Self.fill(v, values, escape: { $0 })))
        }
        var body: [UInt8]?
        if let template = configuration.body {
            let type = configuration.contentType.lowercased()
            var escape: (String) -> String = { $0 }
            if type.contains("json") {
                escape = jsonEscaped
            } else if type.contains("x-www-form-urlencoded") {
                escape = NotifierHTTP.percentEncode
            }
            body = Array(Self.fill(template, values, escape: escape).utf8)
            headers.insert(("Content-Type", configuration.contentType), at: 0)
        }
        _ = try await NotifierHTTP.send(
            CurlRequest(
                url: url, method: configuration.method, headers: headers, body: body,
                timeout: configuration.timeout), channel: channel)
    }
}
