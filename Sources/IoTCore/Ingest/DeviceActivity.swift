import Synchronization

/// When each device was last heard from, whether it is online, and how many points a tenant receives per
/// second: what a console's device list and tenant overview show.
///
/// Give it to the ``Ingestor`` as a ``PointObserver``: a device's last activity is the server time at which a
/// batch holding its points was committed (a device that sends old time stamps is still active now). After a
/// restart, before a device is heard from again, its last activity is the time of its newest stored point
/// (``PointStore/newestPointTimes(_:)``, read once per tenant).
///
/// A device is online while its last activity is within its timeout: ``Configuration/intervalsBeforeOffline``
/// push intervals when the device declares one (``Device/pushIntervalMillis``; at least
/// ``Configuration/minimumTimeoutSeconds``), otherwise ``Configuration/inactivityTimeoutSeconds``, as
/// ThingsBoard's `inactivityTimeout` does.
public final class DeviceActivity: PointObserver {
    /// When a device counts as offline.
    public struct Configuration: Sendable, Hashable, Decodable {
        /// The timeout of a device that declares no push interval. Default 600 (ten minutes).
        public var inactivityTimeoutSeconds: Int64 = 600
        /// How many push intervals a device that declares one may be silent. Default 3.
        public var intervalsBeforeOffline: Int64 = 3
        /// The shortest timeout, so that a device pushing every second is not offline after one late batch.
        /// Default 30.
        public var minimumTimeoutSeconds: Int64 = 30

        /// The defaults.
        public init() {}

        /// Decodes the keys given; those missing keep their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            inactivityTimeoutSeconds =
                try c.decodeIfPresent(Int64.self, forKey: .inactivityTimeoutSeconds) ?? inactivityTimeoutSeconds
            intervalsBeforeOffline =
                try c.decodeIfPresent(Int64.self, forKey: .intervalsBeforeOffline) ?? intervalsBeforeOffline
            minimumTimeoutSeconds =
                try c.decodeIfPresent(Int64.self, forKey: .minimumTimeoutSeconds) ?? minimumTimeoutSeconds
        }

        private enum CodingKeys: String, CodingKey {
            case inactivityTimeoutSeconds, intervalsBeforeOffline, minimumTimeoutSeconds
        }

        /// Checks that every value is positive.
        ///
        /// - Throws: ``IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            for (key, value) in [
                ("inactivityTimeoutSeconds", inactivityTimeoutSeconds),
                ("intervalsBeforeOffline", intervalsBeforeOffline),
                ("minimumTimeoutSeconds", minimumTimeoutSeconds),
            ] where value <= 0 {
                throw IoTError(.invalidArgument, "devices.\(key) must be positive (it is \(value))")
            }
        }
    }

    /// A device's activity as the API shows it.
    public struct Status: Sendable, Hashable {
        /// When the device was last heard from (UTC ms); `nil` when never.
        public var lastActivity: Int64?
        /// Whether the last activity is within the device's timeout.
        public var online: Bool
    }

    /// The configuration.
    public let configuration: Configuration
    private let clock: any IoTClock
    private let points: any PointStore
    private let tenants = Mutex<[TenantID: TenantActivity]>([:])

    /// Points counted per second over this many seconds for ``pointsPerSecond(_:)``.
    static let rateSeconds = 10

    private struct TenantActivity {
        var lastActivity: [String: Int64] = [:]
        /// Whether the store's newest point times were merged in.
        var seeded = false
        /// Points per second: `rateSeconds + 1` buckets by second (the current one is still filling).
        var buckets = [Int](repeating: 0, count: DeviceActivity.rateSeconds + 1)
        var bucketSecond: Int64 = 0

        mutating func record(_ points: [Point], at now: Int64) {
            var previous = ""
            for point in points where point.device != previous {
                lastActivity[point.device] = now
                previous = point.device
            }
            count(points.count, at: now)
        }

        mutating func count(_ n: Int, at now: Int64) {
            let second = now / 1000
            advance(to: second)
            buckets[Int(second % Int64(buckets.count))] += n
        }

        mutating func advance(to second: Int64) {
            guard second > bucketSecond else { return }
            let stale = min(second - bucketSecond, Int64(buckets.count))
            for s in 0..<stale { buckets[Int((second - s) % Int64(buckets.count))] = 0 }
            bucketSecond = second
        }
    }

    /// Creates the tracker.
    ///
    /// - Parameters:
    ///   - points: read once per tenant for the newest point time of each device not yet heard from.
    ///   - clock: the time of activity and of the online check.
    public init(configuration: Configuration = Configuration(), points: any PointStore, clock: any IoTClock) {
        self.configuration = configuration
        self.points = points
        self.clock = clock
    }

    /// Records the batch's devices as active now and counts its points.
    public func pointsCommitted(_ batch: PointBatch) async {
        guard !batch.points.isEmpty else { return }
        let now = clock.now()
        tenants.withLock { tenants in
            // In place: a copy of the tenant's map per batch would cost as much as its devices.
            tenants[batch.tenant, default: TenantActivity()].record(batch.points, at: now)
        }
    }

    /// The last activity of every device of `tenant` known (heard from, or with stored points), by uid.
    ///
    /// - Throws: the point store's error when the newest point times could not be read (the first call for a
    ///   tenant only).
    public func lastActivity(_ tenant: TenantID) async throws -> [String: Int64] {
        if let known = tenants.withLock({ $0[tenant].flatMap { $0.seeded ? $0.lastActivity : nil } }) {
            return known
        }
        let stored = try await points.newestPointTimes(.tenant(tenant))
        return tenants.withLock { tenants in
            if tenants[tenant]?.seeded != true {
                tenants[tenant, default: TenantActivity()].lastActivity.merge(stored) { heard, _ in heard }
                tenants[tenant]?.seeded = true
            }
            return tenants[tenant]?.lastActivity ?? [:]
        }
    }

    /// Forgets everything recorded of `tenant` (call it once the tenant is deleted); a tenant created again
    /// under the same name starts from its own store.
    public func forget(_ tenant: TenantID) {
        tenants.withLock { _ = $0.removeValue(forKey: tenant) }
    }

    /// Whether `device`, last heard from at `lastActivity`, is online at `now` (by default the tracker's clock:
    /// the time its activity is recorded in).
    public func status(of device: Device, lastActivity: Int64?, now: Int64? = nil) -> Status {
        guard let lastActivity else { return Status(lastActivity: nil, online: false) }
        let now = now ?? clock.now()
        return Status(lastActivity: lastActivity, online: now - lastActivity <= timeoutMillis(of: device))
    }

    /// The current time of the tracker's clock.
    public func now() -> Int64 { clock.now() }

    /// How long `device` may be silent before it counts as offline.
    public func timeoutMillis(of device: Device) -> Int64 {
        guard let interval = device.pushIntervalMillis, interval > 0 else {
            return configuration.inactivityTimeoutSeconds.saturatingMultiply(1000)
        }
        return max(
            interval.saturatingMultiply(configuration.intervalsBeforeOffline),
            configuration.minimumTimeoutSeconds.saturatingMultiply(1000))
    }

    /// Points committed per second for `tenant`, averaged over the last ten full seconds.
    public func pointsPerSecond(_ tenant: TenantID) -> Double {
        let now = clock.now()
        return tenants.withLock { tenants in
            guard tenants[tenant] != nil else { return 0 }
            let second = now / 1000
            tenants[tenant]?.advance(to: second)
            let buckets = tenants[tenant]?.buckets ?? []
            let current = Int(second % Int64(buckets.count))
            let total = buckets.indices.reduce(0) { $0 + ($1 == current ? 0 : buckets[$1]) }
            return Double(total) / Double(Self.rateSeconds)
        }
    }
}
