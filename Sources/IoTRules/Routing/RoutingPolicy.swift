public import IoTCore

/// Which events a ``RoutingPolicy`` takes; every field left out matches everything.
public struct EventMatch: Sendable, Hashable, Codable {
    /// Event kinds. Default: raised and cleared (one message per alarm state change).
    public var events: [AlarmEvent.Kind]?
    /// The least severe alarm that matches (`major` takes `major` and `critical`).
    public var minSeverity: AlarmSeverity?
    /// Rule ids.
    public var rules: [String]?
    /// Products of the originating device.
    public var products: [ProductID]?
    /// Tags the originating device must all have: `key` (any value) or `key=value`.
    public var tags: [String]?

    /// Matches raised and cleared events of everything.
    public init(
        events: [AlarmEvent.Kind]? = nil, minSeverity: AlarmSeverity? = nil, rules: [String]? = nil,
        products: [ProductID]? = nil, tags: [String]? = nil
    ) {
        self.events = events
        self.minSeverity = minSeverity
        self.rules = rules
        self.products = products
        self.tags = tags
    }

    /// Whether `event` about `device` (nil when the registry does not know it) matches.
    public func matches(_ event: AlarmEvent, device: Device?) -> Bool {
        guard (events ?? [.raised, .cleared]).contains(event.kind) else { return false }
        if let minSeverity, event.alarm.severity < minSeverity { return false }
        if let rules, !rules.contains(event.alarm.ruleID) { return false }
        if let products {
            guard let device, products.contains(device.product) else { return false }
        }
        for tag in tags ?? [] {
            guard let device else { return false }
            if let eq = tag.firstIndex(of: "=") {
                guard device.tags[String(tag[..<eq])] == String(tag[tag.index(after: eq)...]) else { return false }
            } else if device.tags[tag] == nil {
                return false
            }
        }
        return true
    }
}

/// Where a matching event goes: a channel and its recipients (addresses, or `group:<name>` for a
/// ``RecipientResolver`` to expand).
public struct RoutingTarget: Sendable, Hashable, Codable {
    /// The channel name (as configured: `inbox`, `ops-email`, `ops-dingtalk`, …).
    public var channel: String
    /// Recipients in the channel's terms; robot channels (Feishu, DingTalk, WeCom, Slack) ignore them
    /// and may leave them out.
    public var recipients: [String]?

    /// Creates a target.
    public init(channel: String, recipients: [String]? = nil) {
        self.channel = channel
        self.recipients = recipients
    }
}

/// Maps events (kind, severity, rule, product, tag) to channels and recipients, through templates.
///
/// ```swift
/// let policy = RoutingPolicy(id: "critical-to-ops", match: EventMatch(minSeverity: .major),
///     targets: [RoutingTarget(channel: "inbox", recipients: ["group:ops"]), RoutingTarget(channel: "ops-dingtalk")])
/// try await router.savePolicy(policy, tenant: "acme")
/// ```
public struct RoutingPolicy: Sendable, Hashable, Codable {
    /// Unique id within a tenant.
    public var id: String
    /// Which events.
    public var match: EventMatch
    /// Template id per event kind (`raised`, `cleared`, `acknowledged`); a kind left out uses the
    /// built-in `alarm_<kind>` template.
    public var templates: [String: String]?
    /// Where to.
    public var targets: [RoutingTarget]

    /// Creates a policy.
    public init(
        id: String, match: EventMatch = EventMatch(), templates: [String: String]? = nil, targets: [RoutingTarget]
    ) {
        self.id = id
        self.match = match
        self.templates = templates
        self.targets = targets
    }

    /// The template id for an event kind.
    public func templateID(for kind: AlarmEvent.Kind) -> String {
        templates?[kind.rawValue] ?? "alarm_\(kind.rawValue)"
    }
}

/// Turns a recipient of a ``RoutingTarget`` into channel addresses.
///
/// ## Implementing a resolver
/// Return the addresses for `channel` (possibly none); return `[recipient]` for anything that is already
/// an address. Users, roles and departments plug in here later.
public protocol RecipientResolver: Sendable {
    /// The addresses `recipient` stands for on `channel` in `tenant`.
    func resolve(_ recipient: String, channel: String, tenant: TenantID) async -> [String]
}

/// Knows addresses and static groups: `group:<name>` expands to each member's address on the channel
/// (members without one are skipped); anything else is an address as it is.
///
/// ```swift
/// let resolver = StaticRecipientResolver(groups: ["ops": [
///     .init(name: "alice", addresses: ["inbox": "alice", "email": "alice@example.com", "sms": "+8613800000000"])]])
/// ```
public struct StaticRecipientResolver: RecipientResolver {
    /// A group member.
    public struct Member: Sendable, Hashable, Codable {
        /// A display name.
        public var name: String
        /// Channel name → address.
        public var addresses: [String: String]
        /// Creates a member.
        public init(name: String, addresses: [String: String]) {
            self.name = name
            self.addresses = addresses
        }
    }

    /// Group name → members.
    public var groups: [String: [Member]]

    /// Creates a resolver.
    public init(groups: [String: [Member]] = [:]) { self.groups = groups }

    public func resolve(_ recipient: String, channel: String, tenant: TenantID) async -> [String] {
        guard recipient.hasPrefix("group:") else { return [recipient] }
        return (groups[String(recipient.dropFirst(6))] ?? []).compactMap { $0.addresses[channel] }
    }
}
