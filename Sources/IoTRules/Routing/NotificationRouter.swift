public import IoTCore
public import Logging
import Metrics

/// Turns alarm events into outbox messages: finds the tenant's matching ``RoutingPolicy``s, renders
/// each target channel's ``NotificationTemplate`` in that channel's ``TemplateFormat``, resolves the
/// recipients and enqueues one ``IoTCore/OutboxMessage`` per (channel, recipient). The
/// `NotificationDispatcher` delivers them.
///
/// Register it with ``RuleEngine/addHandler(_:)``. Templates and policies live in memory (seeded from
/// configuration, changed through the management API, which also keeps what it accepted in its
/// `DefinitionStore` and adds it again at start); templates are validated when saved.
///
/// ```swift
/// let router = NotificationRouter(outbox: outbox, registry: registry, resolver: StaticRecipientResolver(),
///     clock: clock, channelFormats: ["ops-dingtalk": .markdown, "sms": .plain], logger: logger,
///     enqueued: { tenant in dispatcher.wake(tenant) })
/// try await router.savePolicy(RoutingPolicy(id: "all", targets: [RoutingTarget(channel: "inbox", recipients: ["ops"])]),
///                             tenant: "acme")
/// await engine.addHandler(router)
/// ```
///
/// One message per alarm state change: each event enqueues once per (channel, recipient), with the
/// ordering key `<alarm id>|<channel>|<recipient>` so one alarm's messages on one channel arrive in
/// order, and one channel's outage does not hold back another's.
public actor NotificationRouter: AlarmEventHandler {
    let outbox: any Outbox
    let registry: (any RegistryStore)?
    let resolver: any RecipientResolver
    let clock: any IoTClock
    let channelFormats: [String: TemplateFormat]
    let logger: Logger
    let enqueued: @Sendable (TenantID) -> Void
    var templates: [TenantID: [String: NotificationTemplate]] = [:]
    var policies: [TenantID: [String: RoutingPolicy]] = [:]
    var sequence: UInt64 = 0
    let failures = Counter(label: "iot_notifications_enqueue_failures_total")

    /// Messages enqueued so far.
    public private(set) var enqueuedCount = 0
    /// Events that could not be routed or enqueued (logged).
    public private(set) var failureCount = 0

    /// Creates a router.
    ///
    /// - Parameters:
    ///   - channelFormats: channel name → how it shows text; channels not listed get
    ///     ``TemplateFormat/subjectAndBody``.
    ///   - enqueued: called after messages were enqueued for a tenant (wake the dispatcher here).
    public init(
        outbox: any Outbox, registry: (any RegistryStore)?, resolver: any RecipientResolver = StaticRecipientResolver(),
        clock: any IoTClock, channelFormats: [String: TemplateFormat] = [:], logger: Logger,
        enqueued: @escaping @Sendable (TenantID) -> Void = { _ in }
    ) {
        self.outbox = outbox
        self.registry = registry
        self.resolver = resolver
        self.clock = clock
        self.channelFormats = channelFormats
        self.logger = logger
        self.enqueued = enqueued
    }

    // MARK: Templates and policies

    /// Saves (adds or replaces) a tenant template, after validating it again.
    public func saveTemplate(_ template: NotificationTemplate, tenant: TenantID) throws(IoTError) {
        try template.validate()
        templates[tenant, default: [:]][template.id] = template
    }

    /// Removes a tenant template; `false` when there was none (built-ins cannot be removed).
    public func removeTemplate(id: String, tenant: TenantID) -> Bool {
        templates[tenant]?.removeValue(forKey: id) != nil
    }

    /// The tenant's templates, built-ins included (a tenant template replaces a built-in of its id).
    public func templates(tenant: TenantID) -> [NotificationTemplate] {
        var all = Dictionary(NotificationTemplate.builtIns.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for (id, t) in templates[tenant] ?? [:] { all[id] = t }
        return all.values.sorted { $0.id < $1.id }
    }

    /// One template by id, built-ins included.
    public func template(id: String, tenant: TenantID) -> NotificationTemplate? {
        templates[tenant]?[id] ?? NotificationTemplate.builtIns.first { $0.id == id }
    }

    /// Saves (adds or replaces) a policy.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` when it names a template that does not exist, has no
    ///   targets, or names a channel this router does not know (when ``channelFormats`` is not empty).
    public func savePolicy(_ policy: RoutingPolicy, tenant: TenantID) throws(IoTError) {
        guard !policy.targets.isEmpty else {
            throw IoTError(.invalidArgument, "policy \"\(policy.id)\" has no targets; give it at least one channel")
        }
        for target in policy.targets where !channelFormats.isEmpty && channelFormats[target.channel] == nil {
            throw IoTError(
                .invalidArgument,
                "policy \"\(policy.id)\" names channel \"\(target.channel)\", which is not configured; configured: \(channelFormats.keys.sorted().joined(separator: ", "))"
            )
        }
        for kind in policy.match.events ?? [.raised, .cleared] {
            let id = policy.templateID(for: kind)
            guard template(id: id, tenant: tenant) != nil else {
                throw IoTError(
                    .invalidArgument,
                    "policy \"\(policy.id)\" uses template \"\(id)\" for \(kind) events, which does not exist")
            }
        }
        policies[tenant, default: [:]][policy.id] = policy
    }

    /// Removes a policy; `false` when there was none.
    public func removePolicy(id: String, tenant: TenantID) -> Bool {
        policies[tenant]?.removeValue(forKey: id) != nil
    }

    /// The tenant's policies by id.
    public func policies(tenant: TenantID) -> [RoutingPolicy] {
        (policies[tenant] ?? [:]).values.sorted { $0.id < $1.id }
    }

    // MARK: Routing

    public func handle(_ event: AlarmEvent) async {
        do {
            _ = try await route(event)
        } catch {
            failureCount += 1
            failures.increment()
            logger.error(
                "alarm event could not be turned into notifications",
                metadata: ["alarm": "\(event.alarm.id)", "event": "\(event.kind)", "error": "\(error)"])
        }
    }

    /// Routes one event and returns the messages it enqueued.
    @discardableResult
    public func route(_ event: AlarmEvent) async throws -> [OutboxMessage] {
        let tenantPolicies = policies[event.tenant] ?? [:]
        guard !tenantPolicies.isEmpty else { return [] }
        let device = try await registry?.device(.tenant(event.tenant), uid: event.alarm.originator)
        let values = AlarmVariables.values(event, device: device)
        var messages: [OutboxMessage] = []
        var seen: Set<String> = []  // (channel, address): one message per state change even if policies overlap
        for policy in tenantPolicies.values.sorted(by: { $0.id < $1.id })
        where policy.match.matches(event, device: device) {
            guard let template = template(id: policy.templateID(for: event.kind), tenant: event.tenant) else {
                continue
            }
            for target in policy.targets {
                let addresses = await addresses(target, tenant: event.tenant)
                let format = channelFormats[target.channel] ?? .subjectAndBody
                let (subject, body) = template.render(for: format, values: values)
                for address in addresses where seen.insert(target.channel + "\u{0}" + address).inserted {
                    sequence &+= 1
                    messages.append(
                        OutboxMessage(
                            id: "\(event.alarm.id).\(event.kind.rawValue).\(event.time).\(Self.nonce)\(sequence)",
                            channel: target.channel, recipient: address, subject: subject, body: body,
                            orderingKey: "\(event.alarm.id)|\(target.channel)|\(address)", createdAt: clock.now()))
                }
            }
        }
        try await enqueue(messages, tenant: event.tenant)
        return messages
    }

    /// Sends a template that is not about an alarm (a maintenance notice, an account registration) to
    /// `targets` now; returns the enqueued messages.
    ///
    /// - Throws: ``IoTError/Code/notFound`` for an unknown template.
    @discardableResult
    public func notify(
        templateID: String, values: [String: String], targets: [RoutingTarget], tenant: TenantID
    ) async throws -> [OutboxMessage] {
        guard let template = template(id: templateID, tenant: tenant) else {
            throw IoTError(.notFound, "template \"\(templateID)\" does not exist in tenant \"\(tenant)\"")
        }
        var messages: [OutboxMessage] = []
        let now = clock.now()
        for target in targets {
            let (subject, body) = template.render(
                for: channelFormats[target.channel] ?? .subjectAndBody, values: values)
            for address in await addresses(target, tenant: tenant) {
                sequence &+= 1
                messages.append(
                    OutboxMessage(
                        id: "\(templateID).\(now).\(Self.nonce)\(sequence)", channel: target.channel,
                        recipient: address,
                        subject: subject, body: body, createdAt: now))
            }
        }
        try await enqueue(messages, tenant: tenant)
        return messages
    }

    private func addresses(_ target: RoutingTarget, tenant: TenantID) async -> [String] {
        guard let recipients = target.recipients, !recipients.isEmpty else { return [""] }
        var out: [String] = []
        for r in recipients { out += await resolver.resolve(r, channel: target.channel, tenant: tenant) }
        return out
    }

    private func enqueue(_ messages: [OutboxMessage], tenant: TenantID) async throws {
        guard !messages.isEmpty else { return }
        for m in messages {
            // A transient storage error (a database busy while another component opens it) is retried a
            // few times before the event is given up and logged.
            var attempt = 0
            while true {
                do {
                    try await outbox.enqueue(.tenant(tenant), m)
                    break
                } catch let e as IoTError where e.code == .storage && attempt < 5 {
                    attempt += 1
                    try await clock.sleep(until: clock.now() + 20 * Int64(attempt))
                }
            }
        }
        enqueuedCount += messages.count
        enqueued(tenant)
    }

    /// Distinguishes ids across restarts of the process (the sequence starts again at 0).
    static let nonce: String = String(UInt32.random(in: 0...UInt32.max), radix: 36) + "-"
}
