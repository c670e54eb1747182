import Logging
import PostgresNIO

extension PostgresStorage {
    /// Hands every notification of `channel` to `handle`, on a connection of its own, listening again after a
    /// lost connection, until the task is cancelled; `onListening` runs each time `LISTEN` took effect.
    func listen(
        on channel: String, logger: Logger, onListening: @escaping @Sendable () -> Void = {},
        _ handle: @escaping @Sendable (String) async -> Void
    ) async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: channel) { notifications in
                        onListening()
                        for try await n in notifications { await handle(n.payload) }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "lost the PostgreSQL listener; listening again",
                    metadata: ["channel": "\(channel)", "error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Sends `payload` on `channel` (`pg_notify`).
    func notify(_ channel: String, _ payload: String, logger: Logger) async throws {
        try await client.query(
            PostgresQuery(unsafeSQL: "SELECT pg_notify($1, $2)", binds: PostgresStorage.binds(channel, payload)),
            logger: logger)
    }
}
