/// Run-time administration of MQTT ingest clients, as the management API (`/api/v1/mqtt/clients`) needs
/// it: create, list, read, replace and remove clients.
///
/// IoTMQTT's `MQTTClientManager` is the implementation; the API depends on this protocol only, so that it
/// links no MQTT library.
///
/// ## Implementing MQTT client administration
/// - ``createClient(_:)`` and ``updateClient(_:)`` check the spec's broker against the outbound policy
///   (clients created in code by other means need not be).
/// - Throw ``IoTError``s: `invalidArgument` (answered 400), `forbidden` (403), `notFound` (404),
///   `conflict` (409: an existing id, or a limit of the instance, with the reason).
public protocol MQTTClientAdministration: Sendable {
    /// Every client's report, by id.
    func clients() async throws(IoTError) -> [MQTTClientReport]
    /// The report of client `id`.
    ///
    /// - Throws: `notFound` for an unknown id.
    func client(id: String) async throws(IoTError) -> MQTTClientReport
    /// Creates and starts a client; its broker must be allowed by the outbound policy.
    ///
    /// - Throws: `invalidArgument` for an invalid spec, `forbidden` for a broker the policy refuses,
    ///   `conflict` when the id exists or a limit is reached.
    func createClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport
    /// Replaces the spec of client `spec.id`; its broker must be allowed by the outbound policy.
    ///
    /// - Throws: `notFound` for an unknown id, `invalidArgument`, `forbidden`.
    func updateClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport
    /// Disconnects and removes a client.
    ///
    /// - Throws: `notFound` for an unknown id.
    func removeClient(id: String) async throws(IoTError)
    /// Creates a client kept from an earlier run (the definition store, the configuration file), or replaces
    /// the spec of one that exists: a restart of one instance among several finds its clients there already.
    /// The default creates the client, or updates it when its id exists.
    ///
    /// - Throws: as ``createClient(_:)`` and ``updateClient(_:)``.
    func restoreClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport
}

extension MQTTClientAdministration {
    /// Creates the client, or updates it when its id exists.
    public func restoreClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport {
        if (try? await client(id: spec.id)) != nil { return try await updateClient(spec) }
        return try await createClient(spec)
    }
}

/// One MQTT ingest client as its manager reports it.
public struct MQTTClientReport: Sendable, Codable, Hashable {
    /// The client's spec.
    public var spec: MQTTClientSpec
    /// Connection state and counters.
    public var status: MQTTClientStatus
    /// What became of the messages.
    public var outcomes: MQTTIngestCounters
    /// Inbound payload bytes per second, over the last second.
    public var bytesInPerSecond: Int
    /// Why and how far the client's reading is throttled, or `nil` when it is not.
    public var throttle: MQTTClientThrottle?
    /// The instance that runs the client, where several instances share the clients (IoTCluster); `nil` on
    /// a single instance.
    public var instance: String?

    /// Creates a report.
    public init(
        spec: MQTTClientSpec, status: MQTTClientStatus, outcomes: MQTTIngestCounters, bytesInPerSecond: Int,
        throttle: MQTTClientThrottle? = nil
    ) {
        self.spec = spec
        self.status = status
        self.outcomes = outcomes
        self.bytesInPerSecond = bytesInPerSecond
        self.throttle = throttle
    }
}

/// An MQTT client held below its share of an instance limit: it reads at most ``bytesPerSecond`` payload bytes
/// a second from its broker, pausing its reading once a second's budget is spent (the broker keeps the rest).
public struct MQTTClientThrottle: Sendable, Codable, Hashable {
    /// The instance limit the client was over its share of.
    public enum Reason: String, Sendable, Codable, Hashable {
        /// `maxInboundBytesPerSecond`: the client's share is the limit over the number of clients.
        case bandwidth
        /// `maxCPUShare`: the client received more than the clients' mean.
        case cpu
        /// `maxMemoryBytes`: the client received more than the clients' mean.
        case memory
    }

    /// The instance limit the client was over its share of.
    public var reason: Reason
    /// The payload bytes the client may read per second.
    public var bytesPerSecond: Int

    /// Creates a throttle.
    public init(reason: Reason, bytesPerSecond: Int) {
        self.reason = reason
        self.bytesPerSecond = bytesPerSecond
    }
}
