/// What `GET /api/v1/cluster` shows: the instances that share one coordination server, their load, and which
/// instance runs which MQTT client.
public struct ClusterStatus: Sendable, Codable, Hashable {
    /// One instance, as its last heartbeat described it.
    public struct Instance: Sendable, Codable, Hashable {
        /// The instance's id (`cluster.instanceID`).
        public var id: String
        /// Whether its heartbeat is current (its key has not expired).
        public var alive: Bool
        /// Whether placement may give it more clients (the design's `use` set); `false`: `no_use`, full.
        public var accepting: Bool
        /// MQTT clients it runs.
        public var clients: Int
        /// MQTT clients it may run, or `nil` for no limit.
        public var capacity: Int?
        /// Resident memory, bytes.
        public var memoryBytes: Int
        /// CPU share over the last second (0–1, all cores).
        public var cpuShare: Double
        /// When it started, milliseconds since 1970.
        public var startedAt: Int64

        /// Creates an instance entry.
        public init(
            id: String, alive: Bool, accepting: Bool, clients: Int, capacity: Int?, memoryBytes: Int, cpuShare: Double,
            startedAt: Int64
        ) {
            self.id = id
            self.alive = alive
            self.accepting = accepting
            self.clients = clients
            self.capacity = capacity
            self.memoryBytes = memoryBytes
            self.cpuShare = cpuShare
            self.startedAt = startedAt
        }
    }

    /// An MQTT client's owner.
    public struct Assignment: Sendable, Codable, Hashable {
        /// The client's id.
        public var client: String
        /// The instance that runs it.
        public var instance: String
        /// The fencing epoch: it grows at every placement, and an instance runs a client only while its epoch is
        /// the current one.
        public var epoch: Int

        /// Creates an assignment.
        public init(client: String, instance: String, epoch: Int) {
            self.client = client
            self.instance = instance
            self.epoch = epoch
        }
    }

    /// The instance that answered.
    public var instance: String
    /// Every instance known, live ones first, by id.
    public var instances: [Instance]
    /// Every MQTT client's owner, by client id.
    public var assignments: [Assignment]

    /// Creates a status.
    public init(instance: String, instances: [Instance], assignments: [Assignment]) {
        self.instance = instance
        self.instances = instances
        self.assignments = assignments
    }
}

/// Where the management API reads the cluster's state from (`GET /api/v1/cluster`). IoTCluster's
/// `ClusterCoordinator` is the implementation; a single instance has none.
public protocol ClusterStatusSource: Sendable {
    /// The instances, their load and the assignments, as the coordination server holds them now.
    ///
    /// - Throws: ``IoTError/Code/unavailable`` when the coordination server cannot be reached.
    func clusterStatus() async throws(IoTError) -> ClusterStatus
}
