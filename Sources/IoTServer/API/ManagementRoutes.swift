import Foundation
public import Hummingbird
public import IoTCore
public import Logging
import Metrics

/// One resource of the management API: a Hummingbird `RouteCollection` under `/api`, served behind the
/// group's authentication middleware, built from the protocols it serves and nothing else.
///
/// ``ManagementServer`` always serves tenants, products, devices, tokens and data. Every other resource is a
/// value given to it in `resources`, built from the `IoTCore` (or `IoTRules`) protocols it needs:
/// ``RuleRoutes``, ``AlarmRoutes``, ``StatisticsRoutes``, ``ParserRoutes``, ``NotificationRoutes``,
/// ``CredentialRoutes``, ``DownlinkRoutes``, ``LiveFeedRoutes``, ``ModbusRoutes``, ``MQTTClientRoutes``,
/// ``CoAPObservationRoutes``, ``DashboardRoutes``, ``ReportRoutes`` and ``ClusterRoutes``. A built-in resource that is not given answers 404 saying so.
/// An integrator adds a resource of their own the same way:
///
/// ```swift
/// struct FirmwareRoutes: ManagementRoutes {
///     let catalog: FirmwareCatalog
///
///     func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext> {
///         let routes = RouteCollection(context: ManagementContext.self)
///         routes.get("/api/v1/tenants/:tenant/firmware") { _, context in
///             try await api.handle {
///                 let scope = try await api.tenantScope(context)  // 404 for an unknown tenant
///                 return Response(status: .ok, body: .init(byteBuffer: try await catalog.listing(scope)))
///             }
///         }
///         return routes
///     }
/// }
/// ```
public protocol ManagementRoutes: Sendable {
    /// The resource's routes, every path under `/api`.
    func routes(_ api: ManagementAPI) -> RouteCollection<ManagementContext>

    /// Adds again what earlier runs accepted through this resource and kept in a ``IoTCore/DefinitionStore``
    /// (``ManagementServer/restoreDefinitions(of:)`` calls it for each tenant, in the order of `resources`).
    /// A definition that cannot be added is returned, not thrown; throw only when the store cannot be read.
    /// The default adds nothing.
    func restoreDefinitions(of tenant: TenantID, _ api: ManagementAPI) async throws -> [ManagementServer.RestoreFailure]

    /// Another instance on the same ``IoTCore/DefinitionStore`` saved or deleted the definition `kind`/`id` of
    /// `tenant` (``ManagementServer/definitionChanged(_:id:of:)`` calls it on every resource): add it again from
    /// the store, or remove it when it is gone there. The default does nothing.
    func definitionChanged(_ kind: String, id: String, of tenant: TenantID, _ api: ManagementAPI) async throws

    /// Removes what this resource runs or keeps for `tenant` outside the tenant's own store (MQTT clients and
    /// their broker sessions, observations, polled devices), before `DELETE /api/v1/tenants/{tenant}` deletes
    /// the tenant. Throw to keep the tenant (the deletion can be retried). The default removes nothing.
    func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws

    /// Sets the resource's gauges from its run-time state; `/metrics` calls it before each scrape (MQTT
    /// clients, CoAP observations and Modbus devices report theirs). The default sets nothing.
    func sampleMetrics() async
}

extension ManagementRoutes {
    /// Sets nothing: the resource has no gauges.
    public func sampleMetrics() async {}

    /// Does nothing: the resource keeps no definitions, or follows no other instance's.
    public func definitionChanged(_ kind: String, id: String, of tenant: TenantID, _ api: ManagementAPI)
        async throws
    {}

    /// Removes nothing: the resource keeps nothing of a tenant outside the tenant's store.
    public func deleteTenant(_ tenant: TenantID, _ api: ManagementAPI) async throws {}

    /// Adds nothing: the resource keeps no definitions.
    public func restoreDefinitions(
        of tenant: TenantID, _ api: ManagementAPI
    ) async throws -> [ManagementServer.RestoreFailure] { [] }
}

/// What every resource of the management API shares: the registry that resolves the `{tenant}`, `{uid}` and
/// `{id}` of a path, the listener's limits, and the error shape.
public struct ManagementAPI: Sendable {
    /// The management listener's configuration (``ManagementServer/Configuration/maxBodyBytes`` bounds a
    /// request body).
    public let configuration: ManagementServer.Configuration
    /// Tenants, products and devices.
    public let registry: any RegistryStore
    /// The API's logger.
    public let logger: Logger
    /// The time stamps of what the API creates.
    public let clock: any IoTClock
    let points: any PointStore
    let tokens: any TokenIssuer
    /// Told after tenant, product and device changes; `nil` when this process does not ingest.
    let ingestor: Ingestor?
    /// With ``ParserRoutes`` among the resources: a product may only name a registered parser.
    let parsers: ParserCatalog?
    /// With ``CredentialRoutes`` among the resources: a deleted device's credentials are revoked too.
    let credentials: (any CredentialManager)?
    /// Last activity and online status of devices; `nil` leaves them out of the device listing.
    let activity: DeviceActivity?
    /// Users, sign-in and API keys; `nil` when only the admin key opens the API.
    public let identity: IdentityService?
    /// The resources served besides tenants, products, devices, tokens and data.
    let resources: [any ManagementRoutes]

    /// The `{tenant}` of the path, which must exist and which the caller may work on, as the scope of the
    /// caller's queries there (the whole tenant, or the devices their data scope holds).
    ///
    /// - Throws: 404 naming the tenant when it does not exist; 403 when the caller belongs to another tenant.
    public func tenantScope(_ context: ManagementContext) async throws -> AccessScope {
        let raw = context.parameters.get("tenant") ?? ""
        let id = TenantID(raw)
        guard id.isValid, try await registry.tenant(id) != nil else {
            throw APIError(
                .notFound, .notFound, "tenant \"\(raw)\" does not exist; create it with POST /api/v1/tenants")
        }
        let principal = try context.principal()
        try checkAccess(id, principal)
        return principal.scope(id)
    }

    /// Checks that `principal` may work on `tenant` (a platform principal on every tenant).
    ///
    /// - Throws: 403 naming the caller's tenant.
    public func checkAccess(_ tenant: TenantID, _ principal: Principal) throws {
        guard principal.mayAccess(tenant) else {
            throw APIError(
                .forbidden, .forbidden,
                "your account belongs to tenant \"\(principal.tenant?.rawValue ?? "")\" and may not work on tenant \"\(tenant)\""
            )
        }
    }

    /// The `{uid}` device of the path, which must exist in the tenant.
    ///
    /// - Throws: 404 naming the device when it does not exist.
    public func existingDevice(_ scope: AccessScope, _ context: ManagementContext) async throws -> Device {
        let uid = context.parameters.get("uid") ?? ""
        guard scope.permits(device: uid), let device = try await registry.device(scope, uid: uid) else {
            throw APIError(.notFound, .unknownDevice, "device \"\(uid)\" does not exist in tenant \"\(scope.tenant)\"")
        }
        return device
    }

    /// The `{id}` product of the path, which must exist in the tenant (404 otherwise).
    func existingProduct(_ scope: AccessScope, _ context: ManagementContext) async throws -> Product {
        let id = context.parameters.get("id") ?? ""
        guard let product = try await registry.product(scope, id: ProductID(id)) else {
            throw APIError(.notFound, .notFound, "product \"\(id)\" does not exist in tenant \"\(scope.tenant)\"")
        }
        return product
    }

    /// Runs a handler, turning every error into the API's JSON error shape: an ``IoTCore/IoTError`` answers
    /// the status of its code (`invalidArgument` 400, `notFound` 404, `conflict` 409 …) with its message;
    /// any other error is a 500, logged.
    public func handle(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch {
            let api = APIError(error)
            if api.status == .internalServerError {
                logger.error("management API request failed", metadata: ["error": "\(error)"])
            }
            throw api
        }
    }

    /// Adds again each definition of `kind` that `definitions` keeps for `tenant`, with `add`. One that cannot
    /// be added is counted in `iot_definitions_quarantined{kind}` and returned with `advice` (what to do;
    /// `{id}` stands for the definition's id), and the others are added regardless.
    func restore(
        _ kind: String, of tenant: TenantID, from definitions: (any DefinitionStore)?,
        advice: String, _ add: ([UInt8]) async throws -> Void
    ) async throws -> [ManagementServer.RestoreFailure] {
        guard let definitions else { return [] }
        var failures: [ManagementServer.RestoreFailure] = []
        for stored in try await definitions.definitions(.tenant(tenant), kind: kind) {
            do {
                try await add(stored.body)
            } catch {
                Counter(label: "iot_definitions_quarantined", dimensions: [("kind", kind)]).increment()
                failures.append(
                    ManagementServer.RestoreFailure(
                        tenant: tenant, kind: kind, id: stored.id,
                        message: "\(error); " + advice.replacingOccurrences(of: "{id}", with: stored.id)))
            }
        }
        return failures
    }
}

extension ManagementAPI {
    /// Applies a definition of `kind` another instance saved or deleted: `apply` its stored body, or `remove` it
    /// when `definitions` no longer has it. Other kinds are left to other resources.
    func follow(
        _ changed: String, id: String, of tenant: TenantID, kind: String, from definitions: (any DefinitionStore)?,
        apply: ([UInt8]) async throws -> Void, remove: () async throws -> Void
    ) async throws {
        guard changed == kind, let definitions else { return }
        if let stored = try await definitions.definitions(.tenant(tenant), kind: kind).first(where: { $0.id == id }) {
            try await apply(stored.body)
        } else {
            try await remove()
        }
    }
}

/// The kinds under which the API keeps what it accepted in the ``IoTCore/DefinitionStore``.
enum DefinitionKind {
    static let alarmRule = "alarm-rule"
    static let statisticsJob = "statistics-job"
    static let notificationTemplate = "notification-template"
    static let notificationPolicy = "notification-policy"
    static let modbusDevice = "modbus-device"
    static let coapObservation = "coap-observation"
    static let mqttClient = "mqtt-client"
}

/// A definition as kept in the definition store: the JSON the API accepts, keys sorted.
func definitionBytes(_ value: some Encodable) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Array(try encoder.encode(value))
}

/// The built-in resources a server may lack, with the paths each one serves: without the resource, these
/// answer 404 saying what to add, rather than the generic "no such route".
enum OptionalResource: CaseIterable {
    case rules, alarms, statistics, parsers, notifications, credentials, downlink, live, modbus, mqttClients
    case coapObservations, reports, cluster

    /// The resource of this kind among `resources`, if any.
    func isServed(by resources: [any ManagementRoutes]) -> Bool {
        resources.contains { resource in
            switch self {
            case .rules: resource is RuleRoutes
            case .alarms: resource is AlarmRoutes
            case .statistics: resource is StatisticsRoutes
            case .parsers: resource is ParserRoutes
            case .notifications: resource is NotificationRoutes
            case .credentials: resource is CredentialRoutes
            case .downlink: resource is DownlinkRoutes
            case .live: resource is LiveFeedRoutes
            case .modbus: resource is ModbusRoutes
            case .mqttClients: resource is MQTTClientRoutes
            case .coapObservations: resource is CoAPObservationRoutes
            case .reports: resource is ReportRoutes
            case .cluster: resource is ClusterRoutes
            }
        }
    }

    /// The paths of the resource: each one, and everything under it.
    var paths: [String] {
        let tenant = "/api/v1/tenants/:tenant"
        return switch self {
        case .rules: [tenant + "/rules"]
        case .alarms: [tenant + "/alarms"]
        case .statistics: [tenant + "/statistics"]
        case .parsers: ["/api/v1/parsers"]
        case .notifications: [tenant + "/notifications"]
        case .credentials: [tenant + "/devices/:uid/credentials"]
        case .downlink: [tenant + "/devices/:uid/downlink"]
        case .live: [tenant + "/live"]
        case .modbus: [tenant + "/modbus"]
        case .mqttClients: ["/api/v1/mqtt"]
        case .coapObservations: ["/api/v1/coap"]
        case .reports: [tenant + "/reports"]
        case .cluster: ["/api/v1/cluster"]
        }
    }

    /// Why the paths answer 404, and what to add.
    var message: String {
        switch self {
        case .rules: "alarm rules are not configured on this server; add RuleRoutes(engine:) to its resources"
        case .alarms: "alarms are not configured on this server; add AlarmRoutes(engine:state:) to its resources"
        case .statistics:
            "statistics jobs are not configured on this server; add StatisticsRoutes(scheduler:results:) to its resources"
        case .parsers: "script parsers are not managed by this server; add ParserRoutes(catalog:) to its resources"
        case .notifications:
            "notifications are not configured on this server; add NotificationRoutes(router:outbox:inbox:) to its resources"
        case .credentials:
            "credential management is not available on this server (add CredentialRoutes(manager:)); use …/tokens"
        case .downlink:
            "downlink is not available: this server has no device sessions (add DownlinkRoutes(sessions:))"
        case .live: "the live feed is not enabled on this server (add LiveFeedRoutes(feed:))"
        case .modbus: "this server runs no Modbus transport (add ModbusRoutes(modbus:))"
        case .mqttClients: "this instance runs no MQTT client manager (add MQTTClientRoutes(clients:))"
        case .coapObservations: "this instance runs no CoAP observer manager (add CoAPObservationRoutes(observations:))"
        case .reports: "scheduled reports are not configured on this server; add ReportRoutes(scheduler:definitions:)"
        case .cluster:
            "this instance runs alone: set cluster.redis in iotd.yaml (or add ClusterRoutes(source:)) to share MQTT clients with others"
        }
    }
}
