public import Hummingbird
public import IoTCore

/// `/api/v1/coap/observations`: the resources the platform observes on CoAP devices (RFC 7641), managed
/// at run time as MQTT clients are (create, remove, monitor; re-registration is the manager's).
///
/// The routes are not under `/tenants/{tenant}` because an observation's id is unique in the instance
/// (``IoTCore/CoAPObservationAdministration`` has one namespace) and its spec carries its tenant, as an MQTT
/// client spec does. The tenant must exist; an observation created here is kept in the definition store
/// of that tenant (kind `coap-observation`) and comes back with ``ManagementServer/restoreDefinitions(of:)``.
public struct CoAPObservationRoutes: ManagementRoutes {
    let observations: any CoAPObservationAdministration
    let definitions: (any DefinitionStore)?
    let gauges = SampledGauges()

    /// Serves the observations of `observations` (IoTCoAP's `CoAPObserverManager`).
    ///
    /// - Parameters:
    ///   - observations: the observer manager.
    ///   - definitions: keeps the observations created through the API, so that they are observed again
    ///     after a restart; `nil` keeps them in memory only.
    public init(observations: any CoAPObservationAdministration, definitions: (any DefinitionStore)? = nil) {
        self.observations = observations
        self.definitions = definitions
    }

    /// Observes again the observations earlier runs created through the API.
    public func restoreDefinitions(
        of tenant: TenantID, _ api: ManagementAPI
    ) async throws -> [ManagementServer.RestoreFailure] {
        try await api.restore(
            DefinitionKind.coapObservation, of: tenant, from: definitions,
            advice:
                "remove it with DELETE /api/v1/coap/observations/{id} and create it again with POST /api/v1/coap/observations"
        ) {
            var spec = try JSONOutput.decode(CoAPObservationSpec.self, from: $0)
            spec.tenant = tenant.rawValue
            try observations.create(spec)
        }
    }

    /// Observes, observes anew or stops an observation another instance changed through its API (a shared
    /// definition store).
    public func definitionChanged(_ kind: String, id: String, of tenant: TenantID, _ api: ManagementAPI)
        async throws
    {
        let existing = observations.report(id: id).map(\.spec).flatMap { $0.tenant == tenant.rawValue ? $0 : nil }
        try await api.follow(
            kind, id: id, of: tenant, kind: DefinitionKind.coapObservation, from: definitions,
            apply: {
                var spec = try JSONOutput.decode(CoAPObservationSpec.self, from: $0)
                spec.tenant = tenant.rawValue
                guard spec != existing else { return }  // this instance's own change
                if existing != nil { try observations.remove(id: id) }
                try observations.create(spec)
            },
            remove: { if existing != nil { try observations.remove(id: id) } })
    }

    /// Stops the tenant's observations before the tenant is deleted.
    public func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws {
        for report in observations.list() where report.spec.tenant == tenant.rawValue {
            try observations.remove(id: report.spec.id)
        }
    }

    /// The routes.
    public func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
        let router = RouteCollection(context: ManagementContext.self)
        let path = "/api/v1/coap/observations"
        router.get(RouterPath(path), needs: .transportRead) { _, context in
            try await api.handle {
                // A tenant's principal sees its own tenant's observations only.
                let principal = try context.principal()
                return try JSONOutput.response(
                    observations.list().filter { principal.mayAccess(TenantID($0.spec.tenant)) })
            }
        }
        router.get(RouterPath(path + "/:id"), needs: .transportRead) { _, context in
            try await api.handle {
                let id = context.parameters.get("id") ?? ""
                guard let report = observations.report(id: id) else {
                    throw Self.unknownObservation(id)
                }
                try api.checkAccess(TenantID(report.spec.tenant), try context.principal())
                return try JSONOutput.response(report)
            }
        }
        router.post(RouterPath(path), needs: .transportAdmin) { request, context in
            try await api.handle {
                let bytes = try await JSONOutput.body(of: request, maxBytes: api.configuration.maxBodyBytes)
                let spec = try JSONOutput.decode(CoAPObservationSpec.self, from: bytes)
                try validateIdentifier(spec.id, "observation id")
                let tenant = TenantID(spec.tenant)
                guard tenant.isValid, try await api.registry.tenant(tenant) != nil else {
                    throw APIError.badRequest(
                        "tenant \"\(spec.tenant)\" of the observation does not exist; create it with POST /api/v1/tenants"
                    )
                }
                try api.checkAccess(tenant, try context.principal())
                try observations.checkDestination(spec)
                let report = try observations.create(spec)
                do {
                    try await saveObservation(spec)
                } catch {
                    // Never keep an observation that would not come back after a restart.
                    try? observations.remove(id: spec.id)
                    throw error
                }
                return try JSONOutput.response(report, status: .created)
            }
        }
        router.delete(RouterPath(path + "/:id"), needs: .transportAdmin) { _, context in
            try await api.handle {
                let id = context.parameters.get("id") ?? ""
                var found = false
                if let report = observations.report(id: id) {
                    try api.checkAccess(TenantID(report.spec.tenant), try context.principal())
                    // Forgotten first: an observation that still runs after a failed delete is not lost either.
                    _ = try await definitions?.deleteDefinition(
                        .tenant(TenantID(report.spec.tenant)), kind: DefinitionKind.coapObservation, id: id)
                    try? observations.remove(id: id)
                    found = true
                } else if let definitions = definitions {
                    // Kept from an earlier run but not restored (see restoreDefinitions()): forget it.
                    let principal = try context.principal()
                    for tenant in try await api.registry.tenants() where principal.mayAccess(tenant.id) {
                        let scope = AccessScope.tenant(tenant.id)
                        if try await definitions.deleteDefinition(scope, kind: DefinitionKind.coapObservation, id: id) {
                            found = true
                        }
                    }
                }
                guard found else { throw Self.unknownObservation(id) }
                return Response(status: .noContent)
            }
        }
        return router
    }

    /// Keeps an observation created through the API in its tenant's definition store.
    private func saveObservation(_ spec: CoAPObservationSpec) async throws {
        try await definitions?.saveDefinition(
            .tenant(TenantID(spec.tenant)), kind: DefinitionKind.coapObservation, id: spec.id,
            body: try definitionBytes(spec))
    }

    private static func unknownObservation(_ id: String) -> APIError {
        APIError.notFound("no CoAP observation \"\(id)\"; list them with GET /api/v1/coap/observations")
    }
}

extension CoAPObservationRoutes {
    /// `iot_coap_observations{state}`, and per observation (`observation`, `tenant`):
    /// `iot_coap_observation_notifications`, `…_stored` and `…_rejected`.
    public func sampleMetrics() async {
        let reports = observations.observedHere()
        var sample = SampledGauges.counts(
            "iot_coap_observations", states: reports.map(\.state), all: ["registering", "observing", "failed"])
        for r in reports {
            let dims = [("observation", r.spec.id), ("tenant", r.spec.tenant)]
            for (name, value) in [("notifications", r.notifications), ("stored", r.stored), ("rejected", r.rejected)] {
                sample.append(.init(label: "iot_coap_observation_" + name, dimensions: dims, value: Double(value)))
            }
        }
        gauges.update(sample)
    }
}
