import IoTCore
import IoTProtocols
import IoTRules
import IoTServer
import IoTStorage
import Logging

extension IoTPlatform {
    /// Loads the script parsers saved through the management API, then compiles and saves the ones the
    /// configuration declares (the file wins over an API change to the same name at each start).
    func loadParsers() async throws {
        for failure in try await parserCatalog.load() {
            logger.error(
                "a saved script parser no longer compiles; fix it with PUT /api/v1/parsers/\(failure.name)",
                metadata: ["error": "\(failure.error)"])
        }
        for declared in configuration.parsers {
            do {
                try await parserCatalog.save(
                    ScriptSource(name: declared.name, language: declared.language, source: declared.source))
            } catch {
                throw ConfigurationError("parsers[\(declared.name)]: \(error.message)")
            }
        }
    }

    /// Adds again the alarm rules and statistics jobs added through the management API in earlier runs.
    func restoreDefinitions() async throws {
        for failure in try await management.restoreDefinitions() {
            logger.error(
                "a definition saved through the API could not be restored; it is set aside (iot_definitions_quarantined) and the start goes on",
                metadata: ["error": "\(failure)"])
        }
    }

    /// Creates or updates the tenants, products and devices the configuration declares, with their rules,
    /// statistics jobs, templates and routing policies.
    func seedTenants() async throws {
        for seed in configuration.tenants {
            let id = TenantID(seed.id)
            var policy = IngestPolicy()
            if let u = seed.unknownDevices, u.hasPrefix("register:") {
                policy.unknownDevices = .register(product: ProductID(String(u.dropFirst("register:".count))))
            }
            if let s = seed.unknownSignals { policy.unknownSignals = s }
            try await registry.saveTenant(Tenant(id: id, name: seed.name, policy: policy))
            for product in seed.products ?? [] { try await registry.saveProduct(.tenant(id), product) }
            for device in seed.devices ?? [] { try await registry.saveDevice(.tenant(id), device) }
            for rule in seed.rules ?? [] { try await rules.add(rule, tenant: id) }
            for job in seed.statistics ?? [] { try await statistics.add(job, tenant: id) }
            for template in seed.notifications?.templates ?? [] {
                try await notifications.saveTemplate(template, tenant: id)
            }
            for policy in seed.notifications?.policies ?? [] { try await notifications.savePolicy(policy, tenant: id) }
        }
    }

    /// Puts the MQTT clients back into a cluster's Redis after it lost its data: those of the definition store,
    /// then the configuration file's (which win, as at a start).
    func restoreClusterClients() async {
        do {
            for failure in try await management.restoreDefinitions(of: { $0 is MQTTClientRoutes }) {
                logger.warning(
                    "an MQTT client could not be restored into Redis",
                    metadata: ["id": "\(failure.id)", "error": "\(failure.message)"])
            }
            try await startMQTTClients()
        } catch {
            logger.error(
                "MQTT clients not restored into Redis; create them again through the API or restart an instance",
                metadata: ["error": "\(error)"])
        }
    }

    /// Creates the MQTT clients the configuration declares (they connect once the ingestor is ready); each
    /// replaces a client of the same id restored from the management API (the file wins, as for rules).
    func startMQTTClients() async throws {
        for spec in configuration.mqtt.clients {
            do {
                if let cluster {
                    // Shared by the instances: the file's spec wins, and placement decides where it runs. Called
                    // through the protocol: a direct call on the actor resolved to the protocol extension's
                    // default (create, which needs a live instance: none at start), not the coordinator's own.
                    let administration: any MQTTClientAdministration = cluster
                    _ = try await administration.restoreClient(spec)
                } else if (try? await mqtt.report(spec.id)) != nil {
                    _ = try await mqtt.update(spec)
                } else {
                    _ = try await mqtt.create(spec)
                }
            } catch {
                throw ConfigurationError("mqtt.clients[\(spec.id)]: \(error.message)")
            }
        }
    }

    /// Creates the CoAP observations the configuration declares; each replaces an observation of the same id
    /// restored from the management API (the file wins, as for rules).
    func startCoAPObservations() throws {
        let observations: any CoAPObservationAdministration = placedCoAP ?? coapObservations
        for spec in configuration.coap.observations {
            do {
                if observations.report(id: spec.id) != nil { try observations.remove(id: spec.id) }
                try observations.create(spec)
            } catch {
                throw ConfigurationError("coap.observations[\(spec.id)]: \(error.message)")
            }
        }
    }

    /// In a cluster, places the Modbus devices the configuration declares (alone, the poller was made with them).
    func placeModbusDevices() async throws {
        guard let placedModbus, let section = configuration.modbus else { return }
        for device in section.devices {
            do {
                _ = try await placedModbus.replace(device)
            } catch {
                throw ConfigurationError("modbus.devices[\(device.identity.deviceUID)]: \(error.message)")
            }
        }
    }
}
