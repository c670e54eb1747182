import IoTCluster
import IoTCore
import IoTPostgres
import IoTRules
import IoTServer
import Logging
import ServiceLifecycle

/// Gives each new view of the cluster's live instances (the coordinator's ``ClusterCoordinator/members``, as a
/// ``ClusterOwnership``) to what is placed by it: the rule engine (each device's rules on one instance), the Modbus
/// devices and the CoAP observations (each run by one instance). Between views, it publishes what this instance
/// runs and reads what the others run, every two seconds (``PostgresStatusBoard``).
struct MembershipFollower: Service {
    let cluster: ClusterCoordinator
    let rules: RuleEngine
    let modbus: PlacedModbus
    let coap: PlacedCoAPObservations
    let board: PostgresStatusBoard
    let instanceID: String
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await live in cluster.members {
                        let ownership = ClusterOwnership(instance: instanceID, live: live)
                        await modbus.ownershipChanged(ownership)
                        coap.ownershipChanged(ownership)
                        await rules.ownershipChanged(ownership)
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            try await modbus.sync(board)
                            try await coap.sync(board)
                        } catch {
                            logger.warning(
                                "the statuses of Modbus devices and CoAP observations were not shared with the other instances",
                                metadata: ["error": "\(error)"])
                        }
                        try? await Task.sleep(for: .seconds(2))
                    }
                }
                await group.waitForAll()
            }
        }
    }
}

/// Applies the definitions other instances on the same PostgreSQL save or delete through their API (rules, jobs,
/// notification routing, parsers, Modbus devices, CoAP observations) to this instance's management resources, as
/// they happen.
struct DefinitionFollower: Service {
    let store: PostgresDefinitionStore
    let management: ManagementServer

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await store.followChanges { tenant, kind, id in
                await management.definitionChanged(kind, id: id, of: tenant)
            }
        }
    }
}
