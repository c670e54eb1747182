public import IoTCore
import Logging

extension ManagementServer {
    /// A definition kept from an earlier run that could not be added again.
    public struct RestoreFailure: Sendable, CustomStringConvertible {
        /// The tenant.
        public var tenant: TenantID
        /// `alarm-rule`, `statistics-job`, `notification-template`, `notification-policy`,
        /// `modbus-device` or `coap-observation`.
        public var kind: String
        /// The rule's or job's id, the Modbus device's uid or the CoAP observation's id.
        public var id: String
        /// Why, and what to do.
        public var message: String

        public var description: String { "\(kind) \"\(id)\" of tenant \"\(tenant)\": \(message)" }
    }

    /// Adds again what earlier runs accepted through the API and kept in a ``IoTCore/DefinitionStore``: each
    /// resource's ``ManagementRoutes/restoreDefinitions(of:_:)``, tenant by tenant, in the order of
    /// ``resources``. Call it once at start, before declarations from a configuration file, which then win
    /// over the same ids.
    ///
    /// The built-in resources bring back their rules (``RuleRoutes``), statistics jobs (``StatisticsRoutes``),
    /// notification templates before the routing policies that name them (``NotificationRoutes``), Modbus
    /// devices, which replace a device of the same identity the Modbus transport was created with
    /// (``ModbusRoutes``), and CoAP observations (``CoAPObservationRoutes``; create the configuration file's
    /// observations after this call).
    ///
    /// A definition that cannot be added (a script that no longer compiles, a number outside the range a
    /// newer version checks) is set aside: it stays in the store untouched, is counted in
    /// `iot_definitions_quarantined{kind}`, and the others are added regardless, so a stored definition
    /// never keeps the process from starting. Replace it through the API, or delete it.
    ///
    /// - Parameter include: the resources to restore (default: all), for example only the MQTT clients when a
    ///   cluster's Redis lost them.
    /// - Returns: the definitions that could not be added, to be logged; the others are added regardless.
    @discardableResult
    public func restoreDefinitions(
        of include: (any ManagementRoutes) -> Bool = { _ in true }
    ) async throws -> [RestoreFailure] {
        var failures: [RestoreFailure] = []
        for tenant in try await api.registry.tenants() {
            for resource in resources where include(resource) {
                failures += try await resource.restoreDefinitions(of: tenant.id, api)
            }
        }
        return failures
    }

    /// Applies a definition another instance saved or deleted in the shared ``IoTCore/DefinitionStore``: each
    /// resource's ``ManagementRoutes/definitionChanged(_:id:of:_:)`` (``RuleRoutes`` adds, replaces or removes
    /// the rule). A change that cannot be applied is logged; the definition stays in the store.
    public func definitionChanged(_ kind: String, id: String, of tenant: TenantID) async {
        for resource in resources {
            do {
                try await resource.definitionChanged(kind, id: id, of: tenant, api)
            } catch {
                api.logger.warning(
                    "a definition changed on another instance could not be applied here",
                    metadata: ["tenant": "\(tenant)", "kind": "\(kind)", "id": "\(id)", "error": "\(error)"])
            }
        }
    }
}
