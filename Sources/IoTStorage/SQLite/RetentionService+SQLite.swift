public import IoTCore
public import Logging

extension RetentionService {
    /// Creates the service for a SQLite store: its ``SQLitePointStore/Configuration/retention`` (nothing is
    /// deleted when it is `nil`), for every tenant with a database in `storage`.
    public convenience init(
        store: SQLitePointStore, storage: SQLiteStorage, configuration: Configuration = Configuration(),
        clock: any IoTClock = SystemClock(), logger: Logger = Logger(label: "iot.retention")
    ) {
        self.init(
            store: store, retention: store.configuration.retention,
            tenants: { storage.tenantsOnDisk() }, configuration: configuration, clock: clock, logger: logger)
    }
}
