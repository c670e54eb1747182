public import Hummingbird
public import IoTCore

/// `GET /api/v1/cluster`: the instances that share the MQTT clients, their load, and which instance runs
/// which client, read from an ``IoTCore/ClusterStatusSource`` (IoTCluster's `ClusterCoordinator`). Platform
/// principals only (a tenant's principal would see other tenants' clients): 403 otherwise.
public struct ClusterRoutes: ManagementRoutes {
    let source: any ClusterStatusSource

    /// Serves the status of `source`.
    public init(source: any ClusterStatusSource) { self.source = source }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        router.get("/api/v1/cluster", needs: .transportRead) { _, context in
            try await api.handle {
                guard try context.principal().tenant == nil else {
                    throw IoTError(.forbidden, "the cluster view is for platform principals; a tenant's cannot read it")
                }
                return try JSONOutput.response(try await source.clusterStatus())
            }
        }
        return router
    }
}
