import Foundation
public import IoTCore
import IoTRules
import Metrics

/// The kinds under which the API keeps what it accepted in the ``IoTCore/DefinitionStore``.
enum DefinitionKind {
    static let alarmRule = "alarm-rule"
    static let statisticsJob = "statistics-job"
    static let notificationTemplate = "notification-template"
    static let notificationPolicy = "notification-policy"
    static let modbusDevice = "modbus-device"
    static let coapObservation = "coap-observation"
}

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

    /// Adds again, to the rule engine, the statistics scheduler and the notification router, the rules,
    /// jobs, notification templates and routing policies that earlier runs accepted through the API (kept
    /// in the ``IoTCore/DefinitionStore`` passed as `definitions`). Call it once at start, before
    /// declarations from a configuration file, which then win over the same ids. Templates come back
    /// before policies, which name them.
    ///
    /// Modbus devices added or changed through the API are polled again too; they replace a device of
    /// the same identity that the Modbus transport was created with (the configuration file's).
    ///
    /// CoAP observations created through the API are observed again; create the configuration file's
    /// observations after this call (they then win over the same ids).
    ///
    /// A definition that cannot be added (a script that no longer compiles, a number outside the range a
    /// newer version checks) is set aside: it stays in the store untouched, is counted in
    /// `iot_definitions_quarantined{kind}`, and the others are added regardless, so a stored definition
    /// never keeps the process from starting. Replace it through the API, or delete it.
    ///
    /// - Returns: the definitions that could not be added, to be logged; the others are added regardless.
    @discardableResult
    public func restoreDefinitions() async throws -> [RestoreFailure] {
        guard let definitions else { return [] }
        var failures: [RestoreFailure] = []
        for tenant in try await registry.tenants() {
            let scope = AccessScope.tenant(tenant.id)
            /// Adds each stored definition of `kind` with `add`, collecting what fails.
            func restore(_ kind: String, _ route: String, _ add: ([UInt8]) async throws -> Void) async throws {
                for stored in try await definitions.definitions(scope, kind: kind) {
                    do {
                        try await add(stored.body)
                    } catch {
                        Counter(label: "iot_definitions_quarantined", dimensions: [("kind", kind)]).increment()
                        failures.append(
                            RestoreFailure(
                                tenant: tenant.id, kind: kind, id: stored.id,
                                message: "\(error); replace it with POST /api/v1/tenants/\(tenant.id)/\(route)"))
                    }
                }
            }
            if let rules {
                try await restore(DefinitionKind.alarmRule, "rules") {
                    try await rules.add(try Self.rule(from: $0), tenant: tenant.id)
                }
            }
            if let statistics {
                try await restore(DefinitionKind.statisticsJob, "statistics/jobs") {
                    try await statistics.add(try Self.statisticsJob(from: $0), tenant: tenant.id)
                }
            }
            if let notifications {
                try await restore(DefinitionKind.notificationTemplate, "notifications/templates") {
                    try await notifications.saveTemplate(
                        try JSONDecoder().decode(NotificationTemplate.self, from: Data($0)), tenant: tenant.id)
                }
                try await restore(DefinitionKind.notificationPolicy, "notifications/policies") {
                    try await notifications.savePolicy(
                        try JSONDecoder().decode(RoutingPolicy.self, from: Data($0)), tenant: tenant.id)
                }
            }
            if let modbus {
                try await restore(DefinitionKind.modbusDevice, "modbus/devices") {
                    try await modbus.replace(try Self.modbusDevice(from: $0, tenant: tenant.id, uid: nil))
                }
            }
            if coapObservations != nil {
                for stored in try await definitions.definitions(scope, kind: DefinitionKind.coapObservation) {
                    do {
                        try restoreObservation(stored.body, tenant: tenant.id)
                    } catch {
                        Counter(
                            label: "iot_definitions_quarantined", dimensions: [("kind", DefinitionKind.coapObservation)]
                        )
                        .increment()
                        failures.append(
                            RestoreFailure(
                                tenant: tenant.id, kind: DefinitionKind.coapObservation, id: stored.id,
                                message:
                                    "\(error); remove it with DELETE /api/v1/coap/observations/\(stored.id) and create it again with POST /api/v1/coap/observations"
                            ))
                    }
                }
            }
        }
        return failures
    }

    /// A template or policy as kept in the definition store (the JSON the API accepts).
    static func definitionBytes(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }
}
