/// How a device is named at an MQTT broker and which topics it may use there.
///
/// Templates use `{uid}` (the device uid) and `{tenant}` (its tenant id). A device may publish to the
/// topics matched by ``publishTopics`` and subscribe to filters inside ``subscribeTopics``; nothing else.
///
/// ```swift
/// var policy = BrokerAccountPolicy()
/// policy.usernameTemplate = "{tenant}/{uid}"          // one broker for several tenants
/// policy.publishTopics = ["{tenant}/devices/{uid}/telemetry"]
/// policy.subscribeTopics = ["{tenant}/devices/{uid}/downlink/#"]
/// let device = DeviceIdentity(tenant: "acme", deviceUID: "meter-1")
/// policy.username(for: device)                          // "acme/meter-1"
/// policy.permits(device, .publish, topic: "acme/devices/meter-1/telemetry")   // true
/// policy.permits(device, .publish, topic: "acme/devices/meter-2/telemetry")   // false
/// ```
///
/// When one broker serves several tenants, put `{tenant}` in the username and topic templates, or
/// devices with the same uid in two tenants share an account name and topics; ``validate()`` refuses a
/// username template without `{tenant}` when ``tenants`` names more than one tenant.
public struct BrokerAccountPolicy: Sendable, Hashable {
    /// The broker username of a device. Default `"{uid}"`.
    public var usernameTemplate: String
    /// The client id a device must connect with, or `nil` (the default) for any client id. With
    /// `"{uid}"`, a device cannot take over another device's session by using its client id.
    public var clientIDTemplate: String?
    /// Topic filters a device may publish to. Default `["devices/{uid}/telemetry"]`.
    public var publishTopics: [String]
    /// Topic filters a device may subscribe to (its downlink). Default `["devices/{uid}/downlink/#"]`.
    public var subscribeTopics: [String]
    /// The tenants whose devices have accounts at this broker; `nil` (the default) for every tenant.
    public var tenants: Set<TenantID>?

    /// Creates a policy; every argument has the default documented on its property.
    public init(
        usernameTemplate: String = "{uid}",
        clientIDTemplate: String? = nil,
        publishTopics: [String] = ["devices/{uid}/telemetry"],
        subscribeTopics: [String] = ["devices/{uid}/downlink/#"],
        tenants: Set<TenantID>? = nil
    ) {
        self.usernameTemplate = usernameTemplate
        self.clientIDTemplate = clientIDTemplate
        self.publishTopics = publishTopics
        self.subscribeTopics = subscribeTopics
        self.tenants = tenants
    }

    /// What a device asks the broker to do.
    public enum Action: String, Sendable, Hashable, Codable {
        /// Publish a message to a topic.
        case publish
        /// Subscribe to a topic filter.
        case subscribe
    }

    /// One permission: a device may `action` on topics matching `filter`.
    public struct TopicRule: Sendable, Hashable, Codable {
        /// Publish or subscribe.
        public var action: Action
        /// The MQTT topic filter, with the device's values filled in.
        public var filter: String
        /// Creates a rule.
        public init(action: Action, filter: String) {
            self.action = action
            self.filter = filter
        }
    }

    // MARK: Names

    /// Whether the policy gives accounts to devices of `tenant`.
    public func serves(_ tenant: TenantID) -> Bool {
        tenants?.contains(tenant) ?? true
    }

    /// The broker username of `device`.
    public func username(for device: DeviceIdentity) -> String {
        Self.fill(usernameTemplate, device)
    }

    /// The client id `device` must use, or `nil` when any will do.
    public func clientID(for device: DeviceIdentity) -> String? {
        clientIDTemplate.map { Self.fill($0, device) }
    }

    /// The device a broker username names: its uid, and its tenant when the template has `{tenant}`.
    ///
    /// `nil` when the username does not fit the template, or fits it in more than one way, or names a
    /// uid or tenant that is not valid. A valid uid has no `/`, `+`, `#`, `?`, `%` or spaces.
    public func device(forUsername username: String) -> (tenant: TenantID?, uid: String)? {
        guard username.utf8.count <= 512 else { return nil }
        let candidates = TemplateMatcher(template: usernameTemplate).matches(username).filter { values in
            guard let uid = values["uid"], Self.isTopicSafe(uid) else { return false }
            return values["tenant"].map { TenantID($0).isValid } ?? true
        }
        guard candidates.count == 1, let values = candidates.first, let uid = values["uid"] else { return nil }
        return (values["tenant"].map { TenantID($0) }, uid)
    }

    // MARK: Topics

    /// The topic rules of `device`: its publish filters, then its subscribe filters.
    public func rules(for device: DeviceIdentity) -> [TopicRule] {
        publishTopics.map { TopicRule(action: .publish, filter: Self.fill($0, device)) }
            + subscribeTopics.map { TopicRule(action: .subscribe, filter: Self.fill($0, device)) }
    }

    /// Whether `device` may publish to the topic name `topic`, or subscribe to the filter `topic`.
    ///
    /// A subscription is allowed only when every topic its filter can match is inside one allowed
    /// filter (`devices/m1/downlink/+` inside `devices/m1/downlink/#`); a shared subscription
    /// (`$share/<group>/<filter>`) is judged by its filter. A publish topic with a wildcard is refused.
    public func permits(_ device: DeviceIdentity, _ action: Action, topic: String) -> Bool {
        guard serves(device.tenant), Self.isTopicSafe(device.deviceUID) else { return false }
        switch action {
        case .publish:
            guard !topic.isEmpty, !topic.contains("+"), !topic.contains("#") else { return false }
            return publishTopics.contains { TopicFilter.filter(Self.fill($0, device), covers: topic) }
        case .subscribe:
            let filter = TopicFilter.withoutSharePrefix(topic)
            guard TopicFilter.isValidFilter(filter) else { return false }
            return subscribeTopics.contains { TopicFilter.filter(Self.fill($0, device), covers: filter) }
        }
    }

    // MARK: Validation

    /// Checks the templates.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` naming the template and what to write.
    public func validate() throws(IoTError) {
        func check(_ template: String, _ what: String) throws(IoTError) {
            var rest = Substring(template)
            while let open = rest.firstIndex(of: "{") {
                guard let close = rest[open...].firstIndex(of: "}") else {
                    throw IoTError(
                        .invalidArgument, "\(what) \"\(template)\" has an unclosed '{'; write {uid} or {tenant}")
                }
                let name = rest[rest.index(after: open)..<close]
                guard name == "uid" || name == "tenant" else {
                    throw IoTError(
                        .invalidArgument,
                        "\(what) \"\(template)\" has the unknown placeholder {\(name)}; use {uid} and {tenant}")
                }
                rest = rest[rest.index(after: close)...]
            }
            guard template.contains("{uid}") else {
                throw IoTError(.invalidArgument, "\(what) \"\(template)\" lacks {uid}; every device needs its own")
            }
        }
        try check(usernameTemplate, "the broker username template")
        guard !usernameTemplate.contains("{uid}{tenant}"), !usernameTemplate.contains("{tenant}{uid}") else {
            throw IoTError(
                .invalidArgument,
                "the broker username template \"\(usernameTemplate)\" joins {uid} and {tenant} with nothing between; write e.g. {tenant}/{uid}"
            )
        }
        if let clientIDTemplate { try check(clientIDTemplate, "the broker client id template") }
        guard !publishTopics.isEmpty || !subscribeTopics.isEmpty else {
            throw IoTError(
                .invalidArgument, "the broker account policy allows no topic; give publish or subscribe topics")
        }
        for topic in publishTopics + subscribeTopics {
            try check(topic, "the broker topic")
            guard TopicFilter.isValidFilter(Self.fill(topic, DeviceIdentity(tenant: "t", deviceUID: "u"))) else {
                throw IoTError(
                    .invalidArgument,
                    "the broker topic \"\(topic)\" is not a valid MQTT topic filter; '+' and '#' stand alone in a level and '#' comes last"
                )
            }
        }
        if let tenants, tenants.count > 1, !usernameTemplate.contains("{tenant}") {
            throw IoTError(
                .invalidArgument,
                "the broker serves \(tenants.count) tenants but its username template \"\(usernameTemplate)\" lacks {tenant}; write e.g. {tenant}/{uid}"
            )
        }
    }

    /// Checks that `device` can have an account under this policy: its uid must be usable inside a topic.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` for a uid with `+`, `#`, `/` or a control character.
    public func validate(_ device: DeviceIdentity) throws(IoTError) {
        guard Self.isTopicSafe(device.deviceUID) else {
            throw IoTError(
                .invalidArgument,
                "device uid \"\(device.deviceUID)\" cannot name MQTT topics (it has '+', '#', '/' or a control character); give MQTT devices uids without them"
            )
        }
    }

    // MARK: Helpers

    static func fill(_ template: String, _ device: DeviceIdentity) -> String {
        template.replacing("{tenant}", with: device.tenant.rawValue).replacing("{uid}", with: device.deviceUID)
    }

    /// Whether a uid can stand in a topic and an account name: 1–128 printable ASCII characters with no
    /// space, `/`, `+`, `#`, `?` or `%`.
    public static func isTopicSafe(_ uid: String) -> Bool {
        !uid.isEmpty && uid.utf8.count <= 128
            && uid.utf8.allSatisfy { c in
                c > 0x20 && c < 0x7F && c != UInt8(ascii: "/") && c != UInt8(ascii: "+") && c != UInt8(ascii: "#")
                    && c != UInt8(ascii: "?") && c != UInt8(ascii: "%")
            }
    }
}

/// MQTT topic filter arithmetic.
enum TopicFilter {
    /// `$share/<group>/<filter>` → `<filter>`; anything else unchanged.
    static func withoutSharePrefix(_ filter: String) -> String {
        guard filter.hasPrefix("$share/") else { return filter }
        let rest = filter.dropFirst("$share/".count)
        guard let slash = rest.firstIndex(of: "/") else { return "" }
        return String(rest[rest.index(after: slash)...])
    }

    /// Non-empty; `+` and `#` occupy a whole level; `#` only last.
    static func isValidFilter(_ filter: String) -> Bool {
        guard !filter.isEmpty else { return false }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (i, level) in levels.enumerated() {
            if level.contains("#") && (level != "#" || i != levels.count - 1) { return false }
            if level.contains("+") && level != "+" { return false }
        }
        return true
    }

    /// Whether every topic that `inner` matches is matched by `outer` (for a topic name: whether
    /// `outer` matches it). Topics starting with `$` are matched only by filters that name the `$` level.
    static func filter(_ outer: String, covers inner: String) -> Bool {
        let o = outer.split(separator: "/", omittingEmptySubsequences: false)
        let i = inner.split(separator: "/", omittingEmptySubsequences: false)
        if let first = i.first, first.hasPrefix("$"), let ofirst = o.first, ofirst == "#" || ofirst == "+" {
            return false
        }
        var k = 0
        while k < o.count {
            if o[k] == "#" { return true }  // matches the parent level and everything below
            guard k < i.count else { return false }
            if o[k] == "+" {
                if i[k] == "#" { return false }  // "#" below is wider than one level
            } else if o[k] != i[k] {
                return false  // a literal covers only the same literal (not "+" or "#")
            }
            k += 1
        }
        return k == i.count
    }
}

/// Matches a string against a template of literals and `{name}` placeholders, returning every way it fits.
struct TemplateMatcher {
    enum Part: Equatable {
        case literal([UInt8])
        case placeholder(String)
    }
    let parts: [Part]

    init(template: String) {
        var parts: [Part] = []
        var literal: [UInt8] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            literal += Array(rest[..<open].utf8)
            if !literal.isEmpty { parts.append(.literal(literal)) }
            literal = []
            parts.append(.placeholder(String(rest[rest.index(after: open)..<close])))
            rest = rest[rest.index(after: close)...]
        }
        literal += Array(rest.utf8)
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    /// Assignments of placeholders to non-empty values that reproduce `value` (at most 16).
    func matches(_ value: String) -> [[String: String]] {
        var results: [[String: String]] = []
        let bytes = Array(value.utf8)
        func walk(_ part: Int, _ at: Int, _ values: [String: String]) {
            if results.count >= 16 { return }
            if part == parts.count {
                if at == bytes.count { results.append(values) }
                return
            }
            switch parts[part] {
            case .literal(let l):
                guard bytes.count - at >= l.count, Array(bytes[at..<at + l.count]) == l else { return }
                walk(part + 1, at + l.count, values)
            case .placeholder(let name):
                guard at < bytes.count else { return }
                for end in (at + 1)...bytes.count {
                    let text = String(decoding: bytes[at..<end], as: UTF8.self)
                    if let previous = values[name], previous != text { continue }
                    var next = values
                    next[name] = text
                    walk(part + 1, end, next)
                }
            }
        }
        walk(0, 0, [:])
        return results
    }
}
