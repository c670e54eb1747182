import Foundation
import IoTCore
import IoTPostgres
import IoTStorage
import Logging

/// The stores a platform is built on: SQLite files in the data directory (the embedded default), or a PostgreSQL
/// database shared by several instances (`storage.postgres`).
struct PlatformStores {
    var registry: any RegistryStore
    var points: any PointStore
    var credentials: any CredentialStore
    var ruleState: any RuleStateStore
    var statistics: any StatisticsStore
    var scripts: any ScriptStore
    var identity: any IdentityStore
    var audit: any AuditStore
    var outbox: any Outbox
    var inbox: any Inbox
    var definitions: any DefinitionStore
    /// The SQLite point store when points are in SQLite (retention applies to it).
    var sqlitePoints: SQLitePointStore?
    /// The PostgreSQL pool when the stores are in PostgreSQL: a service of the platform.
    var postgres: PostgresStorage?

    static func sqlite(_ storage: SQLiteStorage, configuration: PlatformConfiguration) -> PlatformStores {
        let points = SQLitePointStore(storage: storage, configuration: configuration.storage.points)
        return PlatformStores(
            registry: SQLiteRegistryStore(storage: storage), points: points,
            credentials: SQLiteCredentialStore(storage: storage), ruleState: SQLiteRuleStateStore(storage: storage),
            statistics: SQLiteStatisticsStore(storage: storage), scripts: SQLiteScriptStore(storage: storage),
            identity: SQLiteIdentityStore(storage: storage), audit: SQLiteAuditStore(storage: storage),
            outbox: SQLiteOutbox(storage: storage), inbox: SQLiteInbox(storage: storage),
            definitions: SQLiteDefinitionStore(storage: storage), sqlitePoints: points)
    }

    static func postgres(
        _ settings: PostgresStorage.Configuration, configuration: PlatformConfiguration, logger: Logger
    ) throws -> PlatformStores {
        let storage = try PostgresStorage(configuration: settings, logger: logger)
        let instance = try instanceID(configuration)
        logger.info(
            "stores in PostgreSQL", metadata: ["instance": "\(instance)", "schema_prefix": "\(settings.schemaPrefix)"])
        return PlatformStores(
            registry: PostgresRegistryStore(storage: storage),
            points: PostgresPointStore(
                storage: storage,
                configuration: .init(
                    instanceID: instance, duplicatePolicy: configuration.storage.points.duplicatePolicy,
                    rollupDelay: configuration.storage.points.rollupDelay)),
            credentials: PostgresCredentialStore(storage: storage), ruleState: PostgresRuleStateStore(storage: storage),
            statistics: PostgresStatisticsStore(storage: storage, instanceID: instance),
            scripts: PostgresScriptStore(storage: storage),
            identity: PostgresIdentityStore(storage: storage), audit: PostgresAuditStore(storage: storage),
            outbox: PostgresOutbox(storage: storage, configuration: .init(instanceID: instance)),
            inbox: PostgresInbox(storage: storage), definitions: PostgresDefinitionStore(storage: storage),
            postgres: storage)
    }

    /// `cluster.instanceID`, or the id kept in `<dataDirectory>/instance-id` (made once: a random UUID), so the
    /// id stays with the journal whose watermark it names.
    static func instanceID(_ configuration: PlatformConfiguration) throws -> String {
        if let id = configuration.cluster.instanceID { return id }
        let path = configuration.dataDirectory + "/instance-id"
        if let kept = try? String(contentsOfFile: path, encoding: .utf8) {
            let id = kept.trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return id }
        }
        let id = UUID().uuidString.lowercased()
        do {
            try Data((id + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw IoTError(
                .storage, "cannot write the instance id to \(path): \(error); check the data directory's permissions")
        }
        return id
    }
}
