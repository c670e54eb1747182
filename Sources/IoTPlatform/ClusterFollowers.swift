import IoTCluster
import IoTCore
import IoTPostgres
import IoTRules
import IoTServer
import ServiceLifecycle

/// Gives the rule engine each new view of the cluster's live instances, so each device's rules run on one
/// instance (issue 24): the coordinator's ``ClusterCoordinator/members`` as a ``RuleOwnership``.
struct RuleOwnershipFollower: Service {
    let cluster: ClusterCoordinator
    let rules: RuleEngine
    let instanceID: String

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await live in cluster.members {
                await rules.ownershipChanged(RuleOwnership(instance: instanceID, live: live))
            }
        }
    }
}

/// Applies the definitions other instances on the same PostgreSQL save or delete through their API (rules) to
/// this instance's management resources, as they happen.
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
