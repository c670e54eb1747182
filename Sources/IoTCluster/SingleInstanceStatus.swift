import Foundation
public import IoTCore
public import IoTMQTT

/// `GET /api/v1/cluster` on an instance that runs alone (no `cluster.redis`): itself, alive and accepting, its
/// MQTT load, and its clients at epoch 0.
public struct SingleInstanceStatus: ClusterStatusSource {
    let instanceID: String
    let manager: MQTTClientManager
    let startedAt = Int64(Date().timeIntervalSince1970 * 1000)

    /// The status of the instance named `instanceID`, whose clients `manager` runs.
    public init(instanceID: String, manager: MQTTClientManager) {
        self.instanceID = instanceID
        self.manager = manager
    }

    /// This instance and its clients.
    public func clusterStatus() async throws(IoTError) -> ClusterStatus {
        let load = await manager.load
        let full = await manager.isFull
        return ClusterStatus(
            instance: instanceID,
            instances: [
                .init(id: instanceID, load: load, full: full, startedAt: startedAt)
            ],
            assignments: await manager.list().map { .init(client: $0.spec.id, instance: instanceID, epoch: 0) })
    }
}

extension ClusterStatus.Instance {
    /// A live instance as its MQTT client manager's load describes it.
    init(id: String, load: MQTTClientManager.Load, full: Bool, startedAt: Int64) {
        self.init(
            id: id, alive: true, accepting: !full, clients: load.clients, capacity: load.capacity,
            memoryBytes: load.memoryBytes, cpuShare: load.cpuShare, startedAt: startedAt)
    }
}
