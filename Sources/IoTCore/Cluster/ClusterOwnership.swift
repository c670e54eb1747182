/// Which instance of a cluster owns each key of a tenant: the alarm rules of an originator (a device, or a joint
/// rule's originator), a polled Modbus device (`modbus/<uid>`), a CoAP observation (`coap/<id>`). Rendezvous
/// hashing of (tenant, key) over the live instances.
///
/// Every instance computes the same owner from the same list, and a key changes owner only when its owner
/// leaves or a joining instance wins it, so the rest stay where they are. An instance that is not
/// in ``live`` (its lease lapsed) owns nothing; an empty list means no cluster information, and everything is
/// evaluated here.
///
/// ```swift
/// let ownership = ClusterOwnership(instance: "iotd-1", live: ["iotd-1", "iotd-2", "iotd-3"])
/// ownership.owner(tenant: "acme", key: "pump-7")   // "iotd-3", the same on every instance
/// await ruleEngine.ownershipChanged(ownership)
/// ```
public struct ClusterOwnership: Sendable, Hashable {
    /// This instance.
    public let instance: String
    /// The live instances, sorted.
    public let live: [String]

    /// Creates the ownership of `live` instances as seen by `instance`.
    public init(instance: String, live: [String]) {
        self.instance = instance
        self.live = Array(Set(live)).sorted()
    }

    /// The instance that owns `key`: the live instance with the highest hash of (instance, tenant, key); this
    /// instance when ``live`` is empty.
    public func owner(tenant: TenantID, key: String) -> String {
        var best = instance
        var bestScore: UInt64 = 0
        var first = true
        for candidate in live {
            let score = Self.score(candidate, tenant.rawValue, key)
            if first || score > bestScore || (score == bestScore && candidate < best) {
                best = candidate
                bestScore = score
                first = false
            }
        }
        return best
    }

    /// Whether this instance owns `key`.
    public func isLocal(tenant: TenantID, key: String) -> Bool {
        owner(tenant: tenant, key: key) == instance
    }

    /// FNV-1a over the three strings (separated by a zero byte), then SplitMix64's finalizer: stable across
    /// releases, processes and platforms (unlike `Hasher`).
    static func score(_ instance: String, _ tenant: String, _ key: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in [instance, tenant, key] {
            for byte in part.utf8 {
                h ^= UInt64(byte)
                h = h &* 0x100_0000_01b3
            }
            h = h &* 0x100_0000_01b3  // the zero byte between parts
        }
        h ^= h >> 30
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 27
        h = h &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return h
    }
}

/// Carries what a rule engine does not own to the instance that does: points of originators another instance
/// evaluates, and alarm changes made here (acknowledge, clear) to alarms another instance holds.
///
/// `IoTPostgres.PostgresRuleRelay` implements it over PostgreSQL `NOTIFY`; pass it to `RuleEngine.setForwarding(_:)`.
/// Delivery is at most once: a point lost on the way (its owner died) is stored all the same, and the owner that
/// takes over continues from the state saved last.
public protocol RuleForwarding: Sendable {
    /// Sends points whose rules `instance` evaluates; it hands them to its engine's `forwardedPoints(_:)`.
    func forward(_ batch: PointBatch, to instance: String) async
    /// Tells `instance`, which evaluates the rules of `originator`, that an alarm of (`ruleID`, `originator`)
    /// changed in the store; it hands it to its engine's `alarmChangedElsewhere(tenant:ruleID:originator:)`.
    func alarmChanged(tenant: TenantID, ruleID: String, originator: String, to instance: String) async
}
