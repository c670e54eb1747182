import Foundation
public import IoTCore
public import IoTMQTT
public import Logging
import Metrics
public import ServiceLifecycle

/// Several `iotd` instances sharing their MQTT ingest clients through Redis: registration with heartbeats,
/// least-loaded placement, a fencing epoch per assignment, and failover.
///
/// Every instance runs one coordinator beside its ``IoTMQTT/MQTTClientManager``. Once per
/// ``Configuration/heartbeat`` (500 ms) it:
/// 1. renews its registration, a key with a time to live (``Configuration/leaseTTL``, 1.5 s) that holds its load;
///    while the key lives, the instance holds a lease on its clients' broker sessions, and the manager's
///    ``IoTMQTT/MQTTConnectGate`` is open until a local deadline taken *before* the renewal, so the gate closes no
///    later than the key expires. Instances are found by polling (key-expiry events are not timely);
/// 2. moves itself between the design's `use` and `no_use` sets as its limits fill and free up;
/// 3. places (the live instance with the smallest id does) every client whose owner is gone, or that has none,
///    on the live instance of `use` with the lowest used over capacity. An assignment is written by a Redis
///    script that checks the previous owner is still the one read and is no longer alive, and increments the
///    client's epoch: two instances can never both win;
/// 4. runs here exactly the clients assigned to it at their current epoch: a client whose epoch moved on, or
///    that went to another instance, is stopped (its broker session kept for the new owner), a removed one is
///    stopped and its session ended, a changed one is replaced, a new one started.
///
/// An instance whose lease lapsed (paused with `SIGSTOP`, cut off from Redis) stops all its clients before it
/// renews the lease, then starts again those still assigned to it: it never takes back a session another
/// instance was given meanwhile. On graceful shutdown it stops its clients (sessions kept) and deletes its
/// registration, so the others take them over at their next heartbeat.
///
/// The coordinator is also the ``IoTCore/MQTTClientAdministration`` of the management API: the clients' specs
/// live in Redis (and in the definition store, for a restart of the whole cluster), so any instance creates,
/// lists, changes and removes any client; reports come from the owners' last heartbeats.
///
/// Keys (`prefix` is ``Configuration/prefix``): `prefix:instance:<id>` (the heartbeat, with a TTL),
/// `prefix:instances` (ids ever seen), `prefix:instance-info` (each one's last heartbeat), `prefix:use`,
/// `prefix:no_use`, and the hashes `prefix:mqtt:specs`, `prefix:mqtt:assign` (`<instance> <epoch>`),
/// `prefix:mqtt:epoch`, `prefix:mqtt:reports`, `prefix:mqtt:removed` (a removed client's tombstone, until its
/// owner has ended its broker session) and `prefix:generation` (set once; its absence says Redis lost its data,
/// see ``onRedisDataLost(_:)``). None is touched on the data path: ingest costs no Redis
/// operation.
public actor ClusterCoordinator: Service, ClusterStatusSource, MQTTClientAdministration {
    /// `cluster: {redis: …, instanceID: …}`.
    public struct Configuration: Sendable, Hashable {
        /// The Redis server, `redis://host:port[/db]`.
        public var url: String
        /// The Redis password (`AUTH`), if any.
        public var password: String?
        /// This instance's id, unique in the cluster.
        public var instanceID: String
        /// The first part of every key, so that several clusters may share a Redis server. Default `iot`.
        public var prefix: String
        /// How often the instance renews its registration and reconciles its clients. Default 500 ms.
        public var heartbeat: Duration
        /// How long a registration lives without renewal: an instance silent this long is dead and its clients
        /// move. Default 1.5 s (three heartbeats). A client moves within about `leaseTTL + heartbeat`.
        public var leaseTTL: Duration

        /// Creates a configuration.
        public init(
            url: String, password: String? = nil, instanceID: String, prefix: String = "iot",
            heartbeat: Duration = .milliseconds(500), leaseTTL: Duration = .milliseconds(1_500)
        ) {
            self.url = url
            self.password = password
            self.instanceID = instanceID
            self.prefix = prefix
            self.heartbeat = heartbeat
            self.leaseTTL = leaseTTL
        }

        /// Checks the URL, the prefix and that the lease outlives two heartbeats.
        ///
        /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the key.
        public func validate() throws(IoTError) {
            _ = try RedisClient.Endpoint(url: url)
            guard !prefix.isEmpty, !prefix.contains(where: \.isWhitespace) else {
                throw IoTError(.invalidArgument, "cluster.redis.prefix: '\(prefix)' must be a word without spaces")
            }
            guard heartbeat >= .milliseconds(50), leaseTTL >= heartbeat * 2 else {
                throw IoTError(
                    .invalidArgument,
                    "cluster.redis: heartbeatMillis must be at least 50 and leaseMillis at least twice it (defaults 500 and 1500)"
                )
            }
        }
    }

    /// The configuration.
    public nonisolated let configuration: Configuration
    /// The Redis connection.
    public nonisolated let redis: RedisClient
    let manager: MQTTClientManager
    let logger: Logger
    private let startedAt = Int64(Date().timeIntervalSince1970 * 1000)
    /// The clients running here, with the epoch they run at.
    private var running: [String: (epoch: Int, spec: MQTTClientSpec)] = [:]
    /// The local (monotonic) time until which this instance holds its lease.
    private var leaseDeadline = Int64.min
    private var accepting: Bool?
    private var ticking = false
    private var tickAgain = false
    /// Set once the instance leaves (graceful shutdown): no heartbeat after that.
    private var left = false
    /// The cluster's generation as last seen in Redis (`prefix:generation`); a Redis that lost its data has none.
    private var generation: String?
    /// Puts the clients' specs back into Redis after it lost them (see ``onRedisDataLost(_:)``).
    private var restorer: (@Sendable () async -> Void)?
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    /// The live instances the last reconciliation found, and the list last reported on ``members``.
    private var observedMembers: [String] = []
    private var reportedMembers: [String]?
    private let membersContinuation: AsyncStream<[String]>.Continuation

    /// The live instances (sorted ids) each time they change as this instance sees them: after a heartbeat
    /// that found another set, and without this instance once its own lease lapsed (paused, or Redis out of
    /// reach), until it renews it. Newest only: a slow reader skips views in between. For one reader (`iotd`
    /// makes a `ClusterOwnership` of each, for the rule engine, the Modbus devices and the CoAP observations).
    public nonisolated let members: AsyncStream<[String]>

    /// A coordinator for `manager`'s clients; nothing connects before ``run()``.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid configuration.
    public init(configuration: Configuration, manager: MQTTClientManager, logger: Logger = Logger(label: "iot.cluster"))
        throws(IoTError)
    {
        try configuration.validate()
        self.configuration = configuration
        redis = try RedisClient(url: configuration.url, password: configuration.password)
        self.manager = manager
        self.logger = logger
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (members, membersContinuation) = AsyncStream.makeStream(
            of: [String].self, bufferingPolicy: .bufferingNewest(1))
        // No client of this instance connects before its first lease.
        manager.group.gate.close()
    }

    /// Sets what runs when Redis comes back empty (restarted without persistence, flushed): the clients' specs
    /// are gone there, so their owners stop them (broker sessions kept). One instance of the cluster runs
    /// `restore`, which should create the clients again from the definition store and the configuration file
    /// (``restoreClient(_:)``); `iotd` does.
    public func onRedisDataLost(_ restore: @escaping @Sendable () async -> Void) {
        restorer = restore
    }

    private var id: String { configuration.instanceID }
    private var ttlMillis: Int64 { configuration.leaseTTL.inMilliseconds }
    private func key(_ parts: String...) -> String { ([configuration.prefix] + parts).joined(separator: ":") }

    /// Waits until Redis answers (`PING`), for at most `limit`.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unavailable`` naming the server.
    public func waitUntilReachable(within limit: Duration = .seconds(15)) async throws(IoTError) {
        let deadline = ContinuousClock.now + limit
        while true {
            do {
                try await redis.command("PING")
                return
            } catch {
                if ContinuousClock.now >= deadline { throw error }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Heartbeats and reconciles until graceful shutdown, then stops this instance's clients (their sessions
    /// kept) and deletes its registration.
    public func run() async throws {
        let ticker = Task { [wake, heartbeat = configuration.heartbeat] in
            while !Task.isCancelled {
                wake.yield()
                try? await Task.sleep(for: heartbeat)
            }
        }
        await withGracefulShutdownHandler {
            for await _ in wakes { await tick() }
        } onGracefulShutdown: { [wake] in
            wake.finish()
        }
        ticker.cancel()
        await leave()
    }

    /// Runs one heartbeat and reconciliation now (also run by ``run()`` once per heartbeat). Calls that
    /// arrive while one runs make it run once more.
    public func tick() async {
        guard !left else { return }
        guard !ticking else {
            tickAgain = true
            return
        }
        ticking = true
        defer { ticking = false }
        repeat {
            tickAgain = false
            await heartbeatAndReconcile()
        } while tickAgain && !left
    }

    private func heartbeatAndReconcile() async {
        let started = MQTTConnectGate.now
        if started >= leaseDeadline, let reported = reportedMembers, reported.contains(id) {
            // The others may count this instance dead by now: it owns nothing until it renews its lease.
            report(reported.filter { $0 != id })
        }
        if started >= leaseDeadline && !running.isEmpty {
            // The lease lapsed: another instance may hold these sessions now. Stop them all before renewing.
            logger.warning(
                "cluster lease lapsed; stopping this instance's MQTT clients until it is renewed",
                metadata: ["instance": "\(id)", "clients": "\(running.count)"])
            for client in running.keys { await manager.release(id: client) }
            running.removeAll()
        }
        do {
            let load = await manager.load
            let full = await manager.isFull
            let me = ClusterStatus.Instance(id: id, load: load, full: full, startedAt: startedAt)
            let info = Self.json(me)
            try await checkGeneration()
            try await redis.command("SET", key("instance", id), info, "PX", String(ttlMillis))
            leaseDeadline = started + ttlMillis
            manager.group.gate.open(until: leaseDeadline)
            try await redis.command("SADD", key("instances"), id)
            try await redis.command("HSET", key("instance-info"), id, info)
            // Every heartbeat, not only on a change: an instance forgotten while it was silent comes back.
            try await redis.command("SADD", key(full ? "no_use" : "use"), id)
            try await redis.command("SREM", key(full ? "use" : "no_use"), id)
            if accepting != !full {
                accepting = !full
                logger.info(
                    full ? "instance full: placement gives it no more MQTT clients" : "instance accepts MQTT clients",
                    metadata: ["instance": "\(id)"])
            }
            try await reconcile()
            report(observedMembers)
        } catch {
            Counter(label: "iot_cluster_heartbeat_failures_total").increment()
            logger.warning(
                "cluster heartbeat failed; this instance's MQTT clients stop if its lease lapses",
                metadata: ["instance": "\(id)", "error": "\(error)"])
        }
        Gauge(label: "iot_cluster_clients_owned").record(running.count)
    }

    /// Notices a Redis that lost its data: `prefix:generation`, set once by the first instance, is gone. The
    /// instance that sets it again restores the specs (a cluster's first start restores them at every start).
    private func checkGeneration() async throws(IoTError) {
        let current = try await redis.command("GET", key("generation")).string
        if let current {
            generation = current
            return
        }
        let mine = UUID().uuidString
        let won = try await redis.command("SET", key("generation"), mine, "NX").string == "OK"
        let lost = generation != nil
        generation = won ? mine : try await redis.command("GET", key("generation")).string
        guard won, lost else { return }
        Counter(label: "iot_cluster_redis_restores_total").increment()
        logger.warning(
            "Redis lost the cluster's data; this instance puts the MQTT clients' specs back from the definitions",
            metadata: ["instance": "\(id)"])
        if let restorer { Task { await restorer() } }
    }

    // MARK: - Placement and reconciliation

    private struct Owner: Hashable {
        var instance: String
        var epoch: Int
        init?(_ value: String?) {
            guard let parts = value?.split(separator: " "), parts.count == 2, let e = Int(parts[1]) else { return nil }
            instance = String(parts[0])
            epoch = e
        }
    }

    /// The live instances (their last heartbeat) and the ids of dead ones.
    private func instances() async throws(IoTError) -> (live: [String: ClusterStatus.Instance], dead: [String]) {
        let ids = try await redis.command("SMEMBERS", key("instances")).elements.compactMap(\.string).sorted()
        guard !ids.isEmpty else { return ([:], []) }
        let values = try await redis.command(["MGET"] + ids.map { key("instance", $0) }).elements
        let use = Set(try await redis.command("SMEMBERS", key("use")).elements.compactMap(\.string))
        var live: [String: ClusterStatus.Instance] = [:]
        var dead: [String] = []
        for (i, instance) in ids.enumerated() {
            if i < values.count, let text = values[i].string,
                var info = try? JSONDecoder().decode(ClusterStatus.Instance.self, from: Data(text.utf8))
            {
                info.accepting = use.contains(instance)
                live[instance] = info
            } else {
                dead.append(instance)
            }
        }
        return (live, dead)
    }

    /// Assigns `client` to `target` if its owner is still `previous` (`""`: none) and that owner is not alive;
    /// returns the new assignment (`"<instance> <epoch>"`) or `nil` when another instance won.
    private static let assignScript = """
        local cur = redis.call('HGET', KEYS[1], ARGV[1])
        if not cur then cur = '' end
        if cur ~= ARGV[2] then return false end
        if ARGV[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then return false end
        if redis.call('EXISTS', KEYS[4]) == 0 then return false end
        local e = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
        local v = ARGV[4] .. ' ' .. e
        redis.call('HSET', KEYS[1], ARGV[1], v)
        return v
        """

    private func assign(_ client: String, previous: String, previousOwner: String, to target: String)
        async throws(IoTError) -> String?
    {
        try await redis.command(
            "EVAL", Self.assignScript, "4", key("mqtt", "assign"), key("mqtt", "epoch"),
            key("instance", previousOwner.isEmpty ? "-" : previousOwner), key("instance", target),
            client, previous, previousOwner, target
        ).string
    }

    /// The live instance of `use` with the lowest used over capacity, ties by id. Used is the clients assigned
    /// to it (the assignments are current; a heartbeat's count lags), and an instance without a limit counts
    /// over 1 000.
    private static func leastLoaded(_ live: [String: ClusterStatus.Instance], _ assignments: [String: String])
        -> String?
    {
        var used: [String: Int] = [:]
        for value in assignments.values { if let owner = Owner(value) { used[owner.instance, default: 0] += 1 } }
        return live.values.filter(\.accepting).min { a, b in
            let la = Double(used[a.id] ?? 0) / Double(a.capacity ?? 1_000)
            let lb = Double(used[b.id] ?? 0) / Double(b.capacity ?? 1_000)
            return la == lb ? a.id < b.id : la < lb
        }?.id
    }

    private func report(_ live: [String]) {
        guard live != reportedMembers else { return }
        reportedMembers = live
        membersContinuation.yield(live)
    }

    private func reconcile() async throws(IoTError) {
        let (live, dead) = try await instances()
        observedMembers = live.keys.sorted()
        let specs = try await redis.command("HGETALL", key("mqtt", "specs")).fields
        var assignments = try await redis.command("HGETALL", key("mqtt", "assign")).fields
        if live.keys.min() == id {
            for client in specs.keys.sorted() {
                let current = assignments[client]
                let owner = Owner(current)
                if let owner, live[owner.instance] != nil { continue }
                guard let target = Self.leastLoaded(live, assignments) else {
                    logger.warning(
                        "no instance accepts MQTT clients (every one is full); a client waits for a place",
                        metadata: ["client": "\(client)"])
                    break
                }
                if let placed = try await assign(
                    client, previous: current ?? "", previousOwner: owner?.instance ?? "", to: target)
                {
                    assignments[client] = placed
                    Counter(label: "iot_cluster_placements_total").increment()
                    logger.info(
                        "MQTT client placed",
                        metadata: ["client": "\(client)", "instance": "\(target)", "from": "\(owner?.instance ?? "-")"])
                }
            }
            // Forget instances that are gone and own nothing.
            let owners = Set(assignments.values.compactMap { Owner($0)?.instance })
            for instance in dead where !owners.contains(instance) {
                try await redis.command("SREM", key("instances"), instance)
                try await redis.command("HDEL", key("instance-info"), instance)
                try await redis.command("SREM", key("use"), instance)
                try await redis.command("SREM", key("no_use"), instance)
            }
        }
        // Here: exactly the clients assigned to this instance at their current epoch.
        for (client, local) in running {
            guard let text = specs[client] else {
                running[client] = nil
                // Removed through the API (a tombstone says so): the broker session ends too. A spec that is
                // simply gone (Redis lost its data) only stops the client: the broker keeps what it queued.
                if try await redis.command("HDEL", key("mqtt", "removed"), client).int == 1 {
                    try? await manager.remove(id: client)
                    logger.info("MQTT client removed", metadata: ["client": "\(client)"])
                } else {
                    await manager.release(id: client)
                    logger.warning(
                        "MQTT client's spec is gone from Redis; stopped here, its broker session kept (create it again, or restart an instance to restore the definitions)",
                        metadata: ["client": "\(client)"])
                }
                try await redis.command("HDEL", key("mqtt", "reports"), client)
                continue
            }
            guard let owner = Owner(assignments[client]), owner.instance == id, owner.epoch == local.epoch else {
                running[client] = nil
                await manager.release(id: client)
                logger.info(
                    "MQTT client moved to another instance; stopped here",
                    metadata: ["client": "\(client)", "assignment": "\(assignments[client] ?? "-")"])
                continue
            }
            if let spec = Self.spec(text), spec != local.spec {
                do {
                    _ = try await manager.update(spec)
                    running[client]?.spec = spec
                } catch {
                    logger.warning(
                        "MQTT client's new spec failed here", metadata: ["client": "\(client)", "error": "\(error)"])
                }
            }
        }
        var started = 0
        for (client, value) in assignments.sorted(by: { $0.key < $1.key }) {
            guard let owner = Owner(value), owner.instance == id, running[client] == nil,
                let spec = specs[client].flatMap(Self.spec)
            else { continue }
            guard manager.group.gate.isOpen() else { break }
            do {
                if (try? await manager.report(client)) != nil { await manager.release(id: client) }
                _ = try await manager.create(spec)
                running[client] = (owner.epoch, spec)
                started += 1
                logger.info("MQTT client started here", metadata: ["client": "\(client)", "epoch": "\(owner.epoch)"])
            } catch {
                logger.warning(
                    "MQTT client failed to start here", metadata: ["client": "\(client)", "error": "\(error)"])
            }
        }
        // The owners' reports, for every instance's API.
        var words = ["HSET", key("mqtt", "reports")]
        for client in running.keys.sorted() {
            guard var report = try? await manager.report(client) else { continue }
            report.instance = id
            words += [client, Self.json(report)]
        }
        if words.count > 2 { try await redis.command(words) }
        if started > 0 {
            // The reports above say "connecting": publish them again once the new clients are connected, rather
            // than a heartbeat later, so that every instance's API shows a failover as soon as it is done.
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(250))
                await self?.tick()
            }
        }
    }

    /// Stops this instance's clients (sessions kept) and deletes its registration.
    private func leave() async {
        left = true
        membersContinuation.finish()
        // A heartbeat under way finishes first, so that its registration cannot land after the deletion below.
        while ticking { try? await Task.sleep(for: .milliseconds(10)) }
        manager.group.gate.close()
        for client in running.keys { await manager.release(id: client) }
        running.removeAll()
        do {
            try await redis.command("DEL", key("instance", id))
            logger.info(
                "left the cluster; the other instances take this one's MQTT clients", metadata: ["instance": "\(id)"])
        } catch {
            logger.warning(
                "could not leave the cluster; its clients move once its lease expires", metadata: ["error": "\(error)"])
        }
        await redis.close()
    }

    // MARK: - ClusterStatusSource

    /// The instances, their load and every assignment.
    public func clusterStatus() async throws(IoTError) -> ClusterStatus {
        let (live, dead) = try await instances()
        let infos = try await redis.command("HGETALL", key("instance-info")).fields
        var all = live.values.sorted { $0.id < $1.id }
        for instance in dead {
            if var last = infos[instance].flatMap({
                try? JSONDecoder().decode(ClusterStatus.Instance.self, from: Data($0.utf8))
            }) {
                last.alive = false
                last.accepting = false
                all.append(last)
            }
        }
        let assignments = try await redis.command("HGETALL", key("mqtt", "assign")).fields.compactMap {
            entry -> ClusterStatus.Assignment? in
            Owner(entry.value).map { .init(client: entry.key, instance: $0.instance, epoch: $0.epoch) }
        }
        return ClusterStatus(instance: id, instances: all, assignments: assignments.sorted { $0.client < $1.client })
    }

    // MARK: - MQTTClientAdministration

    /// Every client of the cluster, with its owner's last report.
    public func clients() async throws(IoTError) -> [MQTTClientReport] {
        let specs = try await redis.command("HGETALL", key("mqtt", "specs")).fields
        let reports = try await redis.command("HGETALL", key("mqtt", "reports")).fields
        let assignments = try await redis.command("HGETALL", key("mqtt", "assign")).fields
        return specs.keys.sorted().compactMap { client in
            guard let spec = specs[client].flatMap(Self.spec) else { return nil }
            return Self.report(spec, reports[client], Owner(assignments[client]))
        }
    }

    /// One client of the cluster.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound``.
    public func client(id client: String) async throws(IoTError) -> MQTTClientReport {
        guard let spec = try await redis.command("HGET", key("mqtt", "specs"), client).string.flatMap(Self.spec) else {
            throw IoTError(.notFound, "no MQTT client '\(client)'")
        }
        let report = try await redis.command("HGET", key("mqtt", "reports"), client).string
        let owner = Owner(try await redis.command("HGET", key("mqtt", "assign"), client).string)
        return Self.report(spec, report, owner)
    }

    /// Adds a client to the cluster and places it at once.
    ///
    /// - Throws: `invalidArgument`/`forbidden` for a spec this instance refuses, `conflict` for an existing id
    ///   or when every instance is full, `unavailable` when Redis cannot be reached.
    public func createClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport {
        try await manager.check(spec)
        let (live, _) = try await instances()
        let assignments = try await redis.command("HGETALL", key("mqtt", "assign")).fields
        guard let target = Self.leastLoaded(live, assignments) else {
            throw IoTError(
                .conflict,
                "every instance of the cluster is at its MQTT client limits (mqtt.limits); remove a client, raise a limit or add an instance"
            )
        }
        guard try await redis.command("HSETNX", key("mqtt", "specs"), spec.id, Self.json(spec)).int == 1 else {
            throw IoTError(.conflict, "an MQTT client '\(spec.id)' exists; update it (PUT) or remove it first")
        }
        try await redis.command("HDEL", key("mqtt", "removed"), spec.id)
        _ = try await assign(spec.id, previous: "", previousOwner: "", to: target)
        if target == id { await tick() }
        return try await client(id: spec.id)
    }

    /// Replaces a client's spec; its owner picks the change up at once if it is this instance, or at its next
    /// heartbeat.
    ///
    /// - Throws: `notFound`, `invalidArgument`, `forbidden`.
    public func updateClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport {
        try await manager.check(spec)
        guard try await redis.command("HEXISTS", key("mqtt", "specs"), spec.id).int == 1 else {
            throw IoTError(.notFound, "no MQTT client '\(spec.id)'; create it (POST) first")
        }
        try await redis.command("HSET", key("mqtt", "specs"), spec.id, Self.json(spec))
        if running[spec.id] != nil { await tick() }
        return try await client(id: spec.id)
    }

    /// Removes a client from the cluster; its owner stops it and ends its broker session.
    ///
    /// - Throws: `notFound`.
    public func removeClient(id client: String) async throws(IoTError) {
        // The tombstone first: the owner then ends the client's broker session, not only its connection.
        try await redis.command(
            "HSET", key("mqtt", "removed"), client, String(Int64(Date().timeIntervalSince1970 * 1000)))
        guard try await redis.command("HDEL", key("mqtt", "specs"), client).int == 1 else {
            try await redis.command("HDEL", key("mqtt", "removed"), client)
            throw IoTError(.notFound, "no MQTT client '\(client)'")
        }
        try await redis.command("HDEL", key("mqtt", "assign"), client)
        try await redis.command("HDEL", key("mqtt", "reports"), client)
        if running[client] != nil { await tick() }
    }

    /// Adds the client if the cluster has none of this id, or replaces its spec (the definition store and the
    /// configuration file restore clients at every instance's start).
    public func restoreClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport {
        try await manager.check(spec)
        try await redis.command("HSET", key("mqtt", "specs"), spec.id, Self.json(spec))
        return try await client(id: spec.id)
    }

    // MARK: - Encoding

    private static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }

    private static func spec(_ text: String) -> MQTTClientSpec? {
        try? JSONDecoder().decode(MQTTClientSpec.self, from: Data(text.utf8))
    }

    private static func report(_ spec: MQTTClientSpec, _ text: String?, _ owner: Owner?) -> MQTTClientReport {
        if var report = text.flatMap({ try? JSONDecoder().decode(MQTTClientReport.self, from: Data($0.utf8)) }),
            report.instance == owner?.instance
        {
            report.spec = spec
            return report
        }
        var report = MQTTClientReport(
            spec: spec,
            status: MQTTClientStatus(
                state: .idle, lastError: owner == nil ? "waiting for an instance with room" : nil, messagesIn: 0,
                bytesIn: 0, messagesOut: 0, reconnects: 0, subscriptions: []),
            outcomes: MQTTIngestCounters(stored: 0, rejected: 0, notAcknowledged: 0), bytesInPerSecond: 0)
        report.instance = owner?.instance
        return report
    }
}
