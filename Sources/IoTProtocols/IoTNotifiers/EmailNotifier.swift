import Foundation
public import IoTCore

/// Email over SMTP (libcurl): `smtp://` with optional STARTTLS, or `smtps://` (implicit TLS); login
/// with AUTH PLAIN or LOGIN. The recipient is the address.
///
/// The message is UTF-8 plain text, base64-encoded, with `Subject` as an RFC 2047 encoded word when
/// it is not ASCII, a `Message-ID` of `<notification id@host>` and an `X-IoT-Notification-ID` header.
/// A refused login or a 5xx reply dead-letters; a 4xx reply or a network error is retried.
///
/// ```swift
/// let mail = EmailNotifier(channel: "email", configuration: .init(url: "smtp://mail.example.com:587",
///     from: "iot@example.com", username: "iot", password: secret, requireTLS: true))
/// ```
public struct EmailNotifier: Notifier {
    /// The relay and the sender.
    public struct Configuration: Sendable {
        /// `smtp://host:port` (587 or 25) or `smtps://host:port` (465).
        public var url: String
        /// The envelope and `From` address.
        public var from: String
        /// A display name for `From`; optional.
        public var fromName: String?
        /// Login name; `nil` sends without logging in.
        public var username: String?
        /// Login password.
        public var password: String?
        /// `PLAIN`, `LOGIN` or `nil` (libcurl picks what the server offers).
        public var authMechanism: String?
        /// For `smtp://`: `true` requires STARTTLS (fails rather than send in clear); `false` upgrades with
        /// STARTTLS when the relay offers it and sends in clear otherwise (a local relay on port 25). Default
        /// `nil`: required when a ``password`` is set, so that a login never goes in clear, opportunistic
        /// otherwise. `smtps://` is always TLS.
        public var requireTLS: Bool?
        /// A CA bundle (PEM) to trust for the relay's certificate; default the system's.
        public var caFile: String?
        /// Skip certificate verification: only for a test relay with a self-signed certificate.
        public var insecureSkipVerify: Bool
        /// Per message. Default 30 000 ms.
        public var timeout: Duration
        /// Creates a configuration.
        public init(
            url: String, from: String, fromName: String? = nil, username: String? = nil, password: String? = nil,
            authMechanism: String? = nil, requireTLS: Bool? = nil, caFile: String? = nil,
            insecureSkipVerify: Bool = false,
            timeout: Duration = .seconds(30)
        ) {
            self.url = url
            self.from = from
            self.fromName = fromName
            self.username = username
            self.password = password
            self.authMechanism = authMechanism
            self.requireTLS = requireTLS
            self.caFile = caFile
            self.insecureSkipVerify = insecureSkipVerify
            self.timeout = timeout
        }
    }

    public let channel: String
    let configuration: Configuration

    /// Creates the notifier of `channel`.
    public init(channel: String = "email", configuration: Configuration) {
        self.channel = channel
        self.configuration = configuration
    }

    public func send(_ n: IoTCore.Notification) async throws {
        guard n.recipient.contains("@") else {
            throw IoTError(.invalidArgument, "\(channel): \"\(n.recipient)\" is not an email address")
        }
        let message = Self.message(
            n, from: configuration.from, fromName: configuration.fromName, now: NotifierHTTP.nowMillis())
        var request = CurlRequest(
            url: configuration.url, body: Array(message.utf8), timeout: configuration.timeout)
        request.mailFrom = "<\(configuration.from)>"
        request.mailRecipients = ["<\(n.recipient)>"]
        request.username = configuration.username
        request.password = configuration.password
        request.loginOptions = configuration.authMechanism.map { "AUTH=\($0.uppercased())" }
        if configuration.url.hasPrefix("smtp://") {
            request.requireTLS = configuration.requireTLS ?? (configuration.password != nil)
        }
        request.caFile = configuration.caFile
        request.insecure = configuration.insecureSkipVerify
        do {
            _ = try await CurlClient.perform(request)
        } catch let e as IoTError {
            throw IoTError(e.code, "\(channel): \(e.message)", nativeCode: e.nativeCode, domain: e.nativeDomain)
        }
    }

    /// The RFC 5322 message (CRLF line ends).
    static func message(_ n: IoTCore.Notification, from: String, fromName: String?, now: Int64) -> String {
        let domain = from.split(separator: "@").last.map(String.init) ?? "localhost"
        let fromHeader: String = fromName.map { "\(encodeWord($0)) <\(from)>" } ?? "<\(from)>"
        let firstLine = String(n.body.prefix(while: { $0 != "\n" }).prefix(78))
        let subject: String = encodeWord(n.subject ?? firstLine)
        var lines: [String] = []
        lines.append("Date: " + rfc5322Date(now))
        lines.append("From: " + fromHeader)
        lines.append("To: <" + n.recipient + ">")
        lines.append("Subject: " + subject)
        lines.append("Message-ID: <" + n.id + "@" + domain + ">")
        lines.append("X-IoT-Notification-ID: " + n.id)
        lines.append("MIME-Version: 1.0")
        let bodyType = n.format == .html ? "text/html; charset=UTF-8" : "text/plain; charset=UTF-8"
        guard !n.attachments.isEmpty else {
            lines.append("Content-Type: " + bodyType)
            lines.append("Content-Transfer-Encoding: base64")
            lines.append("")
            lines += base64Lines(Data(n.body.utf8))
            return lines.joined(separator: "\r\n") + "\r\n"
        }
        // multipart/mixed (RFC 2046): the body, then each attachment. "=_" never occurs in base64 lines.
        let boundary =
            "=_iotd_"
            + String(
                n.id.unicodeScalars.filter { $0.isASCII && $0.properties.isAlphabetic || ("0"..."9").contains($0) }
                    .prefix(40))
        lines.append("Content-Type: multipart/mixed; boundary=\"\(boundary)\"")
        lines.append("")
        lines.append("This is a message in MIME format.")
        lines.append("--" + boundary)
        lines.append("Content-Type: " + bodyType)
        lines.append("Content-Transfer-Encoding: base64")
        lines.append("")
        lines += base64Lines(Data(n.body.utf8))
        for attachment in n.attachments {
            let name = fileName(attachment.name)
            lines.append("--" + boundary)
            lines.append("Content-Type: \(headerSafe(attachment.contentType)); name=\"\(name)\"")
            lines.append("Content-Disposition: attachment; filename=\"\(name)\"")
            lines.append("Content-Transfer-Encoding: base64")
            lines.append("")
            lines += base64Lines(Data(attachment.data))
        }
        lines.append("--" + boundary + "--")
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// Base64 in lines of 76 characters (RFC 2045).
    private static func base64Lines(_ data: Data) -> [String] {
        let b64 = data.base64EncodedString()
        var lines: [String] = []
        var i = b64.startIndex
        while i < b64.endIndex {
            let j = b64.index(i, offsetBy: 76, limitedBy: b64.endIndex) ?? b64.endIndex
            lines.append(String(b64[i..<j]))
            i = j
        }
        return lines
    }

    /// An attachment's name as a quoted header parameter: printable ASCII but quotes and backslashes; anything
    /// else becomes `_`.
    private static func fileName(_ name: String) -> String {
        let safe = String(
            name.unicodeScalars.map { c -> Character in
                c.isASCII && c.value >= 0x20 && c.value < 0x7F && c != "\"" && c != "\\" ? Character(c) : "_"
            })
        return safe.isEmpty ? "attachment" : String(safe.prefix(200))
    }

    /// A header value with no line breaks.
    private static func headerSafe(_ value: String) -> String {
        value.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
    }

    /// ASCII text as it is (header-safe), anything else as `=?UTF-8?B?…?=`.
    static func encodeWord(_ s: String) -> String {
        let clean = s.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        if clean.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return clean }
        return "=?UTF-8?B?\(Data(clean.utf8).base64EncodedString())?="
    }

    /// `Thu, 26 Nov 2026 21:00:00 +0000`.
    static func rfc5322Date(_ millis: Int64) -> String {
        let seconds = millis / 1000
        let days = Int(seconds / 86_400)
        let rem = Int(seconds % 86_400)
        let (y, m, d) = Civil.date(days: days)
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return
            "\(weekdays[((days % 7) + 7) % 7]), \(d) \(months[m - 1]) \(y) \(two(rem / 3600)):\(two(rem / 60 % 60)):\(two(rem % 60)) +0000"
    }
}
