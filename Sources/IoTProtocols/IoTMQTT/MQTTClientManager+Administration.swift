public import IoTCore

/// The management API (`/api/v1/mqtt/clients`) administers the clients through
/// ``IoTCore/MQTTClientAdministration``; clients it creates or changes must have a broker that
/// ``Configuration/outbound`` allows.
extension MQTTClientManager: MQTTClientAdministration {
    /// Every client's report, by id (``list()``).
    public func clients() -> [MQTTClientReport] { list() }

    /// One client's report (``report(_:)``).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound`` for an unknown id.
    public func client(id: String) throws(IoTError) -> MQTTClientReport { try report(id) }

    /// Creates a client (``create(_:)``) once ``Configuration/outbound`` allows its broker.
    ///
    /// - Throws: what ``IoTCore/OutboundPolicy`` and ``create(_:)`` throw.
    public func createClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport {
        try configuration.outbound.check(host: spec.broker.host, what: "MQTT broker")
        return try await create(spec)
    }

    /// Replaces a client's spec (``update(_:)``) once ``Configuration/outbound`` allows its broker.
    ///
    /// - Throws: what ``IoTCore/OutboundPolicy`` and ``update(_:)`` throw.
    public func updateClient(_ spec: MQTTClientSpec) async throws(IoTError) -> MQTTClientReport {
        try configuration.outbound.check(host: spec.broker.host, what: "MQTT broker")
        return try await update(spec)
    }

    /// Disconnects and removes a client (``remove(id:)``).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/notFound`` for an unknown id.
    public func removeClient(id: String) async throws(IoTError) { try await remove(id: id) }
}
