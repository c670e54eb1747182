/// One entry of the audit log: who did what to which target, with what result, from where and when.
///
/// The management API writes one for every call that changes something and for every sign-in attempt.
public struct AuditEvent: Sendable, Hashable, Codable {
    /// Assigned by the store, increasing; `0` before it is stored.
    public var id: Int64
    /// When (milliseconds since 1970).
    public var time: Int64
    /// Who: a username, `api-key:<id>`, `admin-key`, or what was tried at a failed sign-in.
    public var actor: String
    /// The tenant acted on; `nil` for the platform.
    public var tenant: TenantID?
    /// What: `METHOD /route` (`POST /api/v1/tenants/{tenant}/devices`) or `auth.login`.
    public var action: String
    /// The object: the request's path, or the username of a sign-in.
    public var target: String
    /// The HTTP status answered (`201`, `403` …).
    public var status: Int
    /// The client's address.
    public var client: String

    /// Creates an entry.
    public init(
        id: Int64 = 0, time: Int64, actor: String, tenant: TenantID?, action: String, target: String, status: Int,
        client: String
    ) {
        self.id = id
        self.time = time
        self.actor = actor
        self.tenant = tenant
        self.action = action
        self.target = target
        self.status = status
        self.client = client
    }

    /// Whether the call succeeded (a 2xx or 3xx status).
    public var succeeded: Bool { (200..<400).contains(status) }
}

/// Which audit entries to read: every field that is set must match.
public struct AuditQuery: Sendable, Hashable {
    /// Only this tenant's entries; `nil` for every tenant's and the platform's.
    public var tenant: TenantID?
    /// Only this actor's.
    public var actor: String?
    /// Only entries whose action starts with this (`POST`, `auth.`).
    public var actionPrefix: String?
    /// Only successes (`true`) or failures (`false`).
    public var succeeded: Bool?
    /// From this time on (inclusive, milliseconds since 1970).
    public var from: Int64?
    /// Before this time (exclusive).
    public var to: Int64?
    /// Only entries with a larger id (paging: the last id of the previous page).
    public var after: Int64?
    /// At most this many, oldest first.
    public var limit: Int

    /// Creates a query; with no argument, the first 1,000 entries.
    public init(
        tenant: TenantID? = nil, actor: String? = nil, actionPrefix: String? = nil, succeeded: Bool? = nil,
        from: Int64? = nil, to: Int64? = nil, after: Int64? = nil, limit: Int = 1_000
    ) {
        self.tenant = tenant
        self.actor = actor
        self.actionPrefix = actionPrefix
        self.succeeded = succeeded
        self.from = from
        self.to = to
        self.after = after
        self.limit = limit
    }

    /// Whether `event` matches the filters (not the limit).
    public func matches(_ event: AuditEvent) -> Bool {
        if let tenant, event.tenant != tenant { return false }
        if let actor, event.actor != actor { return false }
        if let actionPrefix, !event.action.hasPrefix(actionPrefix) { return false }
        if let succeeded, event.succeeded != succeeded { return false }
        if let from, event.time < from { return false }
        if let to, event.time >= to { return false }
        if let after, event.id <= after { return false }
        return true
    }
}

/// The append-only audit log.
///
/// ## Implementing an audit store
/// - ``append(_:)`` assigns increasing ids; nothing changes or removes an entry but ``prune(before:)``, the
///   retention.
/// - ``events(_:)`` returns the matching entries in id order, at most `limit`.
/// - Pass `IoTTesting.AuditStoreConformance` to check an implementation.
public protocol AuditStore: Sendable {
    /// Appends an entry; returns it with its id.
    @discardableResult
    func append(_ event: AuditEvent) async throws -> AuditEvent
    /// The matching entries, oldest first.
    func events(_ query: AuditQuery) async throws -> [AuditEvent]
    /// Removes the entries older than `time` (the retention); returns how many.
    func prune(before time: Int64) async throws -> Int
}
